#!/usr/bin/env node
// Validates Teams app manifest and localization files OFFLINE with @microsoft/app-manifest.
//
// Usage: node manifest/validate.js FILE.json [FILE.json ...]
// Prints {"FILE.json": ["error", ...], ...} on stdout. Exit code: 0 = all valid, 1 = schema errors,
// 2 = the files could not be validated at all (unreadable JSON, schema not bundled, missing package).
//
// The package picks the schema from each file's "$schema" URL and reads it from the copies it bundles
// (build/json-schemas/...); only for a URL it does not bundle would it download the schema. Network
// access is switched off below, so such a file fails loudly instead of reaching the internet.
"use strict";

const fs = require("fs");

globalThis.fetch = async (url) => {
  throw new Error(`offline validation: schema ${url} is not bundled with @microsoft/app-manifest`);
};

const { AppManifestUtils } = require("@microsoft/app-manifest");

function compilesAsUnicode(pattern) {
  try {
    new RegExp(pattern, "u");
    return true;
  } catch {
    return false;
  }
}

// The bundled Localization schemas (v1.19 to v1.30 at least) have patternProperties keys such as
// "^activities.activityTypes\[\b(...)\b]\.description$" with a lone "]", which Ajv's unicode regular
// expressions reject ("Lone quantifier brackets"), so no localization file would validate at all.
// "\]" matches the same character, so escaping it keeps the schema's meaning.
function repairPatternKeys(schema) {
  if (!schema.patternProperties) {
    return schema;
  }
  const entries = Object.entries(schema.patternProperties).map(([pattern, rule]) => [
    compilesAsUnicode(pattern) ? pattern : pattern.replace(/\\b\]/g, "\\b\\]"),
    rule,
  ]);
  return { ...schema, patternProperties: Object.fromEntries(entries) };
}

async function validateFile(file) {
  const manifest = JSON.parse(fs.readFileSync(file, "utf8").replace(/^\uFEFF/, ""));
  if (typeof manifest.$schema !== "string") {
    throw new Error(`${file}: no "$schema" property, so the schema version is unknown`);
  }
  const schema = repairPatternKeys(await AppManifestUtils.fetchSchema(manifest.$schema));
  return AppManifestUtils.validateAgainstSchema(manifest, schema);
}

async function main(files) {
  if (files.length === 0) {
    throw new Error("usage: node manifest/validate.js FILE.json [FILE.json ...]");
  }
  const report = {};
  for (const file of files) {
    report[file] = await validateFile(file);
  }
  process.stdout.write(JSON.stringify(report) + "\n");
  return Object.values(report).some((errors) => errors.length > 0) ? 1 : 0;
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (error) => {
    process.stderr.write(`${error.message}\n`);
    process.exitCode = 2;
  },
);
