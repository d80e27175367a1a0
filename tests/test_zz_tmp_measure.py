import statistics, time, json
from tests.ingest_fixtures import change_notifications, notifications_lost, post_webhook
async def test_measure(bot_stack):
    with notifications_lost(bot_stack):
        ids = [bot_stack.deliver_missed_call(f"0171 23456{n:02d}") for n in range(100)]
        await bot_stack.graph.idle()
    payloads = [p for i in ids for p in change_notifications(bot_stack, i)]
    for label, fault in (("graph normal", None), ("graph 3s delay", 3000)):
        if fault: bot_stack.graph.add_fault("delay", path="/users/", delay_ms=fault)
        times = []
        for p in payloads:
            t = time.perf_counter(); r = await post_webhook(bot_stack, p); times.append((time.perf_counter()-t)*1000)
            assert r.status == 202
        times.sort()
        print(label, "n=%d p50=%.1fms p95=%.1fms max=%.1fms" % (len(times), statistics.median(times), times[int(len(times)*0.95)], times[-1]))
        bot_stack.graph.clear_faults()
    await bot_stack.settle()
