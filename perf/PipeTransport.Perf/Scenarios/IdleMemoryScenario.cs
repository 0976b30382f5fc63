using System.Globalization;
using PipeTransport.Perf.Harness;

namespace PipeTransport.Perf.Scenarios;

/// <summary>
/// Process RSS growth per idle TCP connection. Each run is a fresh <c>idle-server</c> child
/// (so one variant's heap growth cannot hide the next one's) that accepts N connections from an
/// <c>idle-clients</c> grandchild (the clients' fds would not fit in one process's limit) and holds
/// each with a pending read: <c>FdListener</c> + a pending <c>Input.ReadAsync</c> vs a .NET
/// <c>Socket</c> server with a pending zero-byte <c>ReceiveAsync</c> (Kestrel's idle state). The
/// result is the marginal cost: RSS with N/5 + N connections minus RSS with N/5, over N.
/// </summary>
internal sealed class IdleMemoryScenario : IScenario
{
    public string Name => "idle-tcp";

    public string Description => "RSS growth per idle TCP connection (server process only; clients in another process)";

    public string Unit => "bytes/conn";

    public bool HigherIsBetter => false;

    public string? SecondaryUnit => "managed heap bytes/conn";

    // Tiered compilation recompiles hot methods in the background, late and at varying times, and the
    // JIT's scratch memory then stays in the malloc heap (measured: 4-6 MB, i.e. 400-600 "bytes per
    // connection" at 10,000 that belong to no connection). Both variants' servers compile every
    // method once, fully optimised, so RSS counts what connections hold.
    private static readonly Dictionary<string, string> s_fullJit = new() { ["DOTNET_TieredCompilation"] = "0" };

    public IReadOnlyList<Variant> Variants { get; } =
    [
        new("FdListener + pending Input.ReadAsync", c => RunAsync(c, "fd")),
        new("Socket + pending zero-byte ReceiveAsync", c => RunAsync(c, "socket"), 0.5),
    ];

    private static async Task<Sample> RunAsync(RunContext context, string server)
    {
        int connections = context.IsWarmup ? Math.Min(1000, context.Settings.Connections) : context.Settings.Connections;
        await using var child = ChildProcess.StartSelf(false, s_fullJit, "idle-server", server, connections.ToString(CultureInfo.InvariantCulture));
        var result = await child.ExpectAsync("result ", context.CancellationToken);
        await child.WaitForSuccessAsync(context.CancellationToken);
        double rss = double.Parse(result[0], CultureInfo.InvariantCulture);
        double heap = double.Parse(result[1], CultureInfo.InvariantCulture);
        return new Sample(rss, Secondary: heap);
    }
}
