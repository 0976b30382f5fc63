using PipeTransport.Perf.Harness;

namespace PipeTransport.Perf.Kestrel;

/// <summary>
/// The same ASP.NET Core app on <c>UsePipeTransport()</c> and on Kestrel's default Sockets transport,
/// each in its own <c>kestrel-server</c> child process, driven by a load generator (<see cref="KestrelLoad"/>)
/// for <c>--wrk-duration</c> seconds per run; the value is the load generator's requests/s.
/// The servers start at the scenario's first run and stay up until it ends; the warm-up run
/// (<c>--wrk-warmup</c> seconds, default 15) gets them jitted and settled, so every timed run meets a warm server.
/// </summary>
internal sealed class KestrelLoadScenario(KestrelLoad load) : IScenario, IAsyncDisposable
{
    private readonly Dictionary<string, KestrelServerProcess> _servers = [];
    private IReadOnlyList<Variant>? _variants;

    public string Name => load.Name;

    public string Description => load.Description + ", server in its own process";

    public string Unit => "requests/s";

    public bool HigherIsBetter => true;

    // Built once: the report tells the subject by reference.
    public IReadOnlyList<Variant> Variants => _variants ??=
    [
        new(KestrelTransports.DisplayName(KestrelTransports.Pipe), c => RunAsync(c, KestrelTransports.Pipe)),
        new(KestrelTransports.DisplayName(KestrelTransports.Sockets), c => RunAsync(c, KestrelTransports.Sockets), 1.1),
        new(KestrelTransports.DisplayName(KestrelTransports.PipeNoCoalesce), c => RunAsync(c, KestrelTransports.PipeNoCoalesce), Extra: true),
        new(KestrelTransports.DisplayName(KestrelTransports.PipeInline), c => RunAsync(c, KestrelTransports.PipeInline), Extra: true),
        new(KestrelTransports.DisplayName(KestrelTransports.PipePoolSend), c => RunAsync(c, KestrelTransports.PipePoolSend), Extra: true),
        new(KestrelTransports.DisplayName(KestrelTransports.PipeNoYield), c => RunAsync(c, KestrelTransports.PipeNoYield), Extra: true),
        new(KestrelTransports.DisplayName(KestrelTransports.PipeDedicated), c => RunAsync(c, KestrelTransports.PipeDedicated), Extra: true),
        new(KestrelTransports.DisplayName(KestrelTransports.PipeHandOff), c => RunAsync(c, KestrelTransports.PipeHandOff), Extra: true),
        new(KestrelTransports.DisplayName(KestrelTransports.PipeReactorPerCpu), c => RunAsync(c, KestrelTransports.PipeReactorPerCpu), Extra: true),
    ];

    private async Task<Sample> RunAsync(RunContext context, string transport)
    {
        if (!_servers.TryGetValue(transport, out var server))
        {
            server = await KestrelServerProcess.StartAsync(transport, null, context.CancellationToken);
            _servers[transport] = server;
        }

        int seconds = context.IsWarmup ? context.Settings.WrkWarmupSeconds : context.Settings.WrkSeconds;
        return await load.RunAsync(server, seconds, context.CancellationToken);
    }

    public async ValueTask DisposeAsync()
    {
        foreach (var server in _servers.Values)
        {
            await server.DisposeAsync();
        }

        _servers.Clear();
    }
}
