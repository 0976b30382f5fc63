using PipeTransport.Perf.Harness;

namespace PipeTransport.Perf.Kestrel;

/// <summary>One load of the <c>kestrel</c> group: a name, what it is, and how to drive a server for some seconds.</summary>
/// <param name="Name">The scenario's name on the command line.</param>
/// <param name="Description">One line for the report.</param>
/// <param name="RunAsync">Drives the server for the given seconds and returns requests/s with p50/p99.</param>
internal sealed record KestrelLoad(string Name, string Description, Func<KestrelServerProcess, int, CancellationToken, Task<Sample>> RunAsync)
{
    /// <summary>Requests in flight per connection in the pipelined and multiplexed loads (TechEmpower's pipelining depth).</summary>
    public const int Depth = 16;

    /// <summary>Request and response body of the gRPC-shaped load.</summary>
    public const int GrpcBodySize = 4096;

    /// <summary>wrk, one request at a time per connection.</summary>
    public static KestrelLoad Wrk(string path, int connections) => new(
        $"kestrel-{path.TrimStart('/')}-{connections}",
        $"Kestrel, {(path == "/plaintext" ? "plaintext (13-byte response)" : "64 KiB response")}, wrk -t1 -c{connections}",
        (server, seconds, ct) => Kestrel.Wrk.RunAsync(server.Port, path, connections, seconds, pipelineDepth: 1, ct));

    /// <summary>wrk with a pipelining script over TCP, as TechEmpower's plaintext test.</summary>
    public static KestrelLoad PipelinedTcp(int connections) => new(
        $"kestrel-pipelined-tcp-{connections}",
        $"Kestrel, plaintext pipelined {Depth} deep over TCP, wrk -t1 -c{connections}",
        (server, seconds, ct) => Kestrel.Wrk.RunAsync(server.Port, "/plaintext", connections, seconds, Depth, ct));

    /// <summary>h2load's HTTP/1.1 pipelining over a Unix socket (wrk cannot connect to one).</summary>
    public static KestrelLoad PipelinedUnix(int connections) => new(
        $"kestrel-pipelined-unix-{connections}",
        $"Kestrel, plaintext pipelined {Depth} deep over a Unix socket, h2load --h1 -c{connections} -m{Depth}",
        (server, seconds, ct) => H2Load.RunAsync(server.Port, server.UnixPath, http1: true, "/plaintext", connections, Depth, bodySize: 0, seconds, ct));

    /// <summary>HTTP/2 with many streams per connection.</summary>
    public static KestrelLoad Http2(bool unix, int connections, int streams) => new(
        $"kestrel-h2-{(unix ? "unix" : "tcp")}-{connections}x{streams}",
        $"Kestrel, HTTP/2 plaintext over {(unix ? "a Unix socket" : "TCP")}, h2load -c{connections} -m{streams}",
        (server, seconds, ct) => H2Load.RunAsync(server.Http2Port, unix ? server.Http2UnixPath : null, http1: false, "/plaintext", connections, streams, bodySize: 0, seconds, ct));

    /// <summary>gRPC-shaped: HTTP/2 over a Unix socket, 4 KiB requests answered by 4 KiB responses.</summary>
    public static KestrelLoad Grpc(int connections, int streams) => new(
        $"kestrel-grpc-unix-{connections}x{streams}",
        $"Kestrel, HTTP/2 over a Unix socket, {GrpcBodySize / 1024} KiB request and response bodies, h2load -c{connections} -m{streams}",
        (server, seconds, ct) => H2Load.RunAsync(server.Http2Port, server.Http2UnixPath, http1: false, "/echo", connections, streams, GrpcBodySize, seconds, ct));
}
