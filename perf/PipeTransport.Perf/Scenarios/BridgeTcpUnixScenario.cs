using System.Globalization;
using PipeTransport.Perf.Harness;

namespace PipeTransport.Perf.Scenarios;

/// <summary>
/// <c>tcp-writer</c> process (listens on the loopback, sends) → bridge → <c>unix-reader</c>
/// process (listens on a Unix socket, hashes). The bridge (the Native AOT pipebridge) connects to both:
/// <c>pipebridge -u --engine copy|splice tcp:127.0.0.1:PORT unix:PATH</c> vs
/// <c>socat -u -b 65536 TCP:127.0.0.1:PORT UNIX-CONNECT:PATH</c>. Timed from the writer's accept
/// (its first send) to the reader's EOF.
/// </summary>
internal sealed class BridgeTcpUnixScenario : IScenario
{
    public string Name => "bridge-tcp-unix";

    public string Description => "TCP → Unix socket through a bridge process, writer and hashing reader are separate processes";

    public string Unit => "GiB/s";

    public bool HigherIsBetter => true;

    public int SubjectCount => 2;

    public string? SecondaryUnit => "bridge CPU s/GiB";

    // Targets: copy ≥ 1.5× socat; splice ≥ 2× socat and ≥ 0.8× the C splice loop.
    public IReadOnlyList<Variant> Variants { get; } = Pipebridge.WithComparison(
    [
        new("pipebridge --engine copy", c => RunAsync(c, (c, port, path) => Pipebridge.RunAsync(c, "copy", Tcp(port), "unix:" + path)), Unavailable: NativePipebridge.Unavailable),
        new("pipebridge --engine splice", c => RunAsync(c, (c, port, path) => Pipebridge.RunAsync(c, "splice", Tcp(port), "unix:" + path)), Unavailable: NativePipebridge.Unavailable),
        new("socat -u -b 65536", c => RunAsync(c, (c, port, path) => Pipebridge.RunMeasuredAsync(c, "socat", "-u", "-b", "65536",
            "TCP:127.0.0.1:" + port.ToString(CultureInfo.InvariantCulture), "UNIX-CONNECT:" + path)), Targets: [1.5, 2.0]),
        new("C reference: blocking read/write loop, 1 MiB", c => RunAsync(c, (c, port, path) => CBridge.RunAsync(c, "copy", "tcp:127.0.0.1:" + port.ToString(CultureInfo.InvariantCulture), "unix:" + path)), Targets: [], Unavailable: CBridge.Unavailable),
        new("C reference: blocking splice loop through a 1 MiB pipe", c => RunAsync(c, (c, port, path) => CBridge.RunAsync(c, "splice", "tcp:127.0.0.1:" + port.ToString(CultureInfo.InvariantCulture), "unix:" + path)), Targets: [null, 0.8], Unavailable: CBridge.Unavailable),
        new("dotnet pipebridge.dll --engine copy", c => RunAsync(c, (c, port, path) => Pipebridge.RunDllAsync(c, "copy", Tcp(port), "unix:" + path)),
            Extra: true, Targets: []),
        new("dotnet pipebridge.dll --engine splice", c => RunAsync(c, (c, port, path) => Pipebridge.RunDllAsync(c, "splice", Tcp(port), "unix:" + path)),
            Extra: true, Targets: []),
        new("pipebridge --engine copy -b 64k", c => RunAsync(c, (c, port, path) => Pipebridge.RunAsync(c, "copy", Tcp(port), "unix:" + path, 64 << 10)),
            Extra: true, Targets: []),
        new("pipebridge --engine splice -b 64k", c => RunAsync(c, (c, port, path) => Pipebridge.RunAsync(c, "splice", Tcp(port), "unix:" + path, 64 << 10)),
            Extra: true, Targets: []),
    ],
    [
        new("compare build: pipebridge --engine copy", c => RunAsync(c, (c, port, path) => Pipebridge.RunDllAsync(c, "copy", Tcp(port), "unix:" + path, dll: Pipebridge.CompareDll)), Extra: true, Targets: []),
        new("compare build: pipebridge --engine splice", c => RunAsync(c, (c, port, path) => Pipebridge.RunDllAsync(c, "splice", Tcp(port), "unix:" + path, dll: Pipebridge.CompareDll)), Extra: true, Targets: []),
    ]);

    private static string Tcp(int port) => "tcp:127.0.0.1:" + port.ToString(CultureInfo.InvariantCulture);

    private static async Task<Sample> RunAsync(RunContext context, Func<RunContext, int, string, Task<TimeSpan>> bridge)
    {
        FifoRun.PrepareExpectedHash(context);
        string path = Path.Combine(context.WorkDirectory, "bridge-reader.sock");
        var inv = CultureInfo.InvariantCulture;
        await using var reader = ChildProcess.StartSelf(false, "unix-reader", path, (1 << 20).ToString(inv));
        await reader.ExpectAsync("ready", context.CancellationToken);
        await using var writer = ChildProcess.StartSelf(false, "tcp-writer", context.Size.ToString(inv), PerfSettings.Seed.ToString(inv),
            context.Settings.BufferSize.ToString(inv));
        int port = int.Parse((await writer.ExpectAsync("ready ", context.CancellationToken))[0], inv);
        TimeSpan cpu = await bridge(context, port, path);
        long start = await FifoRun.FinishWriterAsync(context, writer);
        var done = await reader.ExpectAsync("done ", context.CancellationToken);
        await reader.WaitForSuccessAsync(context.CancellationToken);
        FifoRun.Verify(context, Convert.ToUInt64(done[1], 16), long.Parse(done[2], inv));
        return Sample.Throughput(context.Size, start, long.Parse(done[0], inv)) with { Secondary = cpu.TotalSeconds / ((double)context.Size / (1L << 30)) };
    }
}
