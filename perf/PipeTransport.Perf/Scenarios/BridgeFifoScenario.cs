using PipeTransport.Perf.Harness;

namespace PipeTransport.Perf.Scenarios;

/// <summary>
/// Writer process → FIFO A → bridge → FIFO B → hashing reader process, the bridge being
/// <c>pipebridge -u --engine copy|splice fifo:A fifo:B</c> (its own process, the Native AOT binary) vs
/// <c>socat -u -b 65536</c> vs <c>cat</c> vs the harness's own <c>FileStream.CopyToAsync</c>.
/// Timed like <see cref="FifoCopyScenario"/>: from the writer's first byte to the reader's EOF, so
/// every bridge's process start-up is outside the window, and every byte is hashed.
/// </summary>
internal sealed class BridgeFifoScenario : IScenario
{
    public string Name => "bridge-fifo";

    public string Description => "FIFO → FIFO through a bridge process, writer and hashing reader are separate processes";

    public string Unit => "GiB/s";

    public bool HigherIsBetter => true;

    public int SubjectCount => 2;

    public string? SecondaryUnit => "bridge CPU s/GiB";

    // Targets: copy ≥ 1.5× socat and ≥ 1.0× cat; splice ≥ 2× socat and ≥ 0.9× the C splice loop.
    public IReadOnlyList<Variant> Variants { get; } = Pipebridge.WithComparison(
    [
        new("pipebridge --engine copy", c => FifoCopyScenario.RunMeasuredAsync(c, (c, a, b) => Pipebridge.RunAsync(c, "copy", "fifo:" + a, "fifo:" + b)), Unavailable: NativePipebridge.Unavailable),
        new("pipebridge --engine splice", c => FifoCopyScenario.RunMeasuredAsync(c, (c, a, b) => Pipebridge.RunAsync(c, "splice", "fifo:" + a, "fifo:" + b)), Unavailable: NativePipebridge.Unavailable),
        new("socat -u -b 65536", c => FifoCopyScenario.RunMeasuredAsync(c, (c, a, b) => Pipebridge.RunMeasuredAsync(c, "socat", "-u", "-b", "65536", "GOPEN:" + a, "GOPEN:" + b)),
            Targets: [1.5, 2.0]),
        new("cat A > B", c => FifoCopyScenario.RunMeasuredAsync(c, FifoCopyScenario.CatMeasuredAsync), Targets: [1.0, null]),
        new("FileStream.CopyToAsync", c => FifoCopyScenario.RunMeasuredAsync(c, (c, a, b) => FifoCopyScenario.InProcessCpuAsync(c, a, b, FifoCopyScenario.CopyWithFileStreamsAsync)), Targets: []),
        new("no bridge: writer → one 1 MiB FIFO → reader", RunWithoutBridgeAsync, Targets: []),
        new("C reference: blocking read/write loop, 1 MiB", c => FifoCopyScenario.RunMeasuredAsync(c, (c, a, b) => CBridge.RunAsync(c, "copy", "fifo:" + a, "fifo:" + b)), Targets: [], Unavailable: CBridge.Unavailable),
        new("C reference: blocking splice loop, 1 MiB", c => FifoCopyScenario.RunMeasuredAsync(c, (c, a, b) => CBridge.RunAsync(c, "splice", "fifo:" + a, "fifo:" + b)), Targets: [null, 0.9], Unavailable: CBridge.Unavailable),
        new("C reference: splice loop waiting in epoll, 1 MiB", c => FifoCopyScenario.RunMeasuredAsync(c, (c, a, b) => CBridge.RunAsync(c, "splice-epoll", "fifo:" + a, "fifo:" + b)), Targets: [], Unavailable: CBridge.Unavailable),
        new("dotnet pipebridge.dll --engine copy", c => FifoCopyScenario.RunMeasuredAsync(c, (c, a, b) => Pipebridge.RunDllAsync(c, "copy", "fifo:" + a, "fifo:" + b)),
            Extra: true, Targets: []),
        new("dotnet pipebridge.dll --engine splice", c => FifoCopyScenario.RunMeasuredAsync(c, (c, a, b) => Pipebridge.RunDllAsync(c, "splice", "fifo:" + a, "fifo:" + b)),
            Extra: true, Targets: []),
        new("pipebridge --engine copy -b 64k", c => FifoCopyScenario.RunMeasuredAsync(c, (c, a, b) => Pipebridge.RunAsync(c, "copy", "fifo:" + a, "fifo:" + b, 64 << 10)),
            Extra: true, Targets: []),
        new("pipebridge --engine copy -b 1m", c => FifoCopyScenario.RunMeasuredAsync(c, (c, a, b) => Pipebridge.RunAsync(c, "copy", "fifo:" + a, "fifo:" + b, 1 << 20)),
            Extra: true, Targets: []),
        new("pipebridge --engine splice -b 64k", c => FifoCopyScenario.RunMeasuredAsync(c, (c, a, b) => Pipebridge.RunAsync(c, "splice", "fifo:" + a, "fifo:" + b, 64 << 10)),
            Extra: true, Targets: []),
    ],
    [
        new("compare build: pipebridge --engine copy", c => FifoCopyScenario.RunMeasuredAsync(c, (c, a, b) => Pipebridge.RunDllAsync(c, "copy", "fifo:" + a, "fifo:" + b, dll: Pipebridge.CompareDll)), Extra: true, Targets: []),
        new("compare build: pipebridge --engine splice", c => FifoCopyScenario.RunMeasuredAsync(c, (c, a, b) => Pipebridge.RunDllAsync(c, "splice", "fifo:" + a, "fifo:" + b, dll: Pipebridge.CompareDll)), Extra: true, Targets: []),
    ]);

    /// <summary>
    /// The ceiling: the same writer and hashing reader on one FIFO grown to 1 MiB (as pipebridge grows
    /// its FIFOs), nothing in between. No bridge can be faster than this on the same machine.
    /// </summary>
    private static async Task<Sample> RunWithoutBridgeAsync(RunContext context)
    {
        FifoRun.PrepareExpectedHash(context);
        string path = FifoRun.NewFifo(context, "direct.fifo");
        var inv = System.Globalization.CultureInfo.InvariantCulture;
        string pipeSize = Math.Max(context.Settings.PipeSize, 1 << 20).ToString(inv);
        await using var reader = ChildProcess.StartSelf(false, "reader", path, (1 << 20).ToString(inv), pipeSize);
        await reader.ExpectAsync("ready", context.CancellationToken);
        await using var writer = ChildProcess.StartSelf(false, "writer", path, context.Size.ToString(inv), PerfSettings.Seed.ToString(inv),
            context.Settings.BufferSize.ToString(inv), pipeSize);
        await writer.ExpectAsync("ready", context.CancellationToken);
        long start = await FifoRun.FinishWriterAsync(context, writer);
        var done = await reader.ExpectAsync("done ", context.CancellationToken);
        await reader.WaitForSuccessAsync(context.CancellationToken);
        FifoRun.Verify(context, Convert.ToUInt64(done[1], 16), long.Parse(done[2], inv));
        return Sample.Throughput(context.Size, start, long.Parse(done[0], inv)) with { Secondary = 0 };
    }
}
