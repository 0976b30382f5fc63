using PipeTransport.Perf.Harness;

namespace PipeTransport.Perf.Kestrel;

/// <summary>
/// The <c>kestrel</c> group: one request at a time per connection (wrk at 32 and 256 connections, both
/// responses), pipelined HTTP/1.1 and multiplexed HTTP/2 over TCP and Unix sockets, a gRPC-shaped load,
/// then idle memory.
/// </summary>
internal static class KestrelScenarios
{
    public static readonly IReadOnlyList<IScenario> All =
    [
        new KestrelLoadScenario(KestrelLoad.Wrk("/plaintext", 32)),
        new KestrelLoadScenario(KestrelLoad.Wrk("/plaintext", 256)),
        new KestrelLoadScenario(KestrelLoad.Wrk("/64k", 32)),
        new KestrelLoadScenario(KestrelLoad.Wrk("/64k", 256)),
        new KestrelLoadScenario(KestrelLoad.PipelinedTcp(64)),
        new KestrelLoadScenario(KestrelLoad.PipelinedUnix(64)),
        new KestrelLoadScenario(KestrelLoad.Http2(unix: false, 16, 10)),
        new KestrelLoadScenario(KestrelLoad.Http2(unix: true, 16, 10)),
        new KestrelLoadScenario(KestrelLoad.Grpc(16, 10)),
        new KestrelIdleScenario(),
    ];
}
