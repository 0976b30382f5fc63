using System.Globalization;
using PipeTransport.Perf.Harness;

namespace PipeTransport.Perf.Scenarios;

/// <summary>
/// <see cref="FifoReadScenario"/> as a user's program meets it: every run's reader is a fresh process
/// with the default runtime settings (the harness's own tiering settings are left out of its
/// runtimeconfig), so JIT warm-up is part of the time.
/// </summary>
internal sealed class FifoReadFreshScenario : IScenario
{
    public string Name => "fifo-read-fresh";

    public string Description => "FIFO read throughput in a fresh reader process with default runtime settings, every byte hashed";

    public string Unit => "GiB/s";

    public bool HigherIsBetter => true;

    public IReadOnlyList<Variant> Variants { get; } =
    [
        new("FdConnection.Input", c => RunAsync(c, "fdconnection")),
        new("FileStream + PipeReader.Create", c => RunAsync(c, "filestream"), 1.0),
        new("raw blocking read loop", c => RunAsync(c, "raw"), 1.0),
    ];

    private static async Task<Sample> RunAsync(RunContext context, string method)
    {
        var inv = CultureInfo.InvariantCulture;
        FifoRun.PrepareExpectedHash(context);
        string path = FifoRun.NewFifo(context, "read-fresh.fifo");
        await using var reader = ChildProcess.Start("dotnet", "exec", "--runtimeconfig", DefaultRuntimeConfig(context),
            typeof(FifoReadFreshScenario).Assembly.Location, "fresh-reader", method, path, context.Settings.BufferSize.ToString(inv));
        await reader.ExpectAsync("ready", context.CancellationToken);
        await using var writer = await FifoRun.StartWriterAsync(context, path);
        var done = await reader.ExpectAsync("done ", context.CancellationToken);
        await reader.WaitForSuccessAsync(context.CancellationToken);
        long start = await FifoRun.FinishWriterAsync(context, writer);
        FifoRun.Verify(context, Convert.ToUInt64(done[1], 16), long.Parse(done[2], inv));
        return Sample.Throughput(context.Size, start, long.Parse(done[0], inv));
    }

    /// <summary>The harness's runtimeconfig without its configProperties: the frameworks only, as <c>dotnet new console</c> makes it.</summary>
    private static string DefaultRuntimeConfig(RunContext context)
    {
        string path = Path.Combine(context.WorkDirectory, "default.runtimeconfig.json");
        if (!File.Exists(path))
        {
            File.WriteAllText(path, """
                {
                  "runtimeOptions": {
                    "tfm": "net10.0",
                    "frameworks": [
                      { "name": "Microsoft.NETCore.App", "version": "10.0.0" },
                      { "name": "Microsoft.AspNetCore.App", "version": "10.0.0" }
                    ]
                  }
                }
                """);
        }

        return path;
    }
}
