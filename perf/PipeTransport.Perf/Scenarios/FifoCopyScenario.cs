using System.Buffers;
using PipeTransport.Perf.Harness;

namespace PipeTransport.Perf.Scenarios;

/// <summary>
/// Writer process → FIFO A → copy → FIFO B → hashing reader process.
/// The copy is an <c>FdConnection</c> (Input of A into Output of B) vs <c>FileStream.CopyToAsync</c>
/// vs <c>cat A &gt; B</c>. Timed from the writer's first byte to the reader's EOF, so every variant,
/// including the external <c>cat</c>, is measured the same way.
/// </summary>
internal sealed class FifoCopyScenario : IScenario
{
    public string Name => "fifo-copy";

    public string Description => "FIFO to FIFO copy, writer and hashing reader are separate processes";

    public string Unit => "GiB/s";

    public bool HigherIsBetter => true;

    public IReadOnlyList<Variant> Variants { get; } =
    [
        new("FdConnection Input.CopyToAsync(Output)", c => RunAsync(c, (c, a, b) => CopyToWithFdConnectionAsync(c, a, b, FdConnections.Options(c)))),
        new("FdConnection ReadAsync/Write/FlushAsync loop", c => RunAsync(c, (c, a, b) => CopyWithFdConnectionAsync(c, a, b, FdConnections.Options(c)))),
        new("FileStream.CopyToAsync", c => RunAsync(c, CopyWithFileStreamsAsync), 1.0),
        new("cat A > B", c => RunAsync(c, CopyWithCatAsync), 1.0),
        new("FdConnection InputFd → OutputFd (SpliceCopier)", c => RunAsync(c, (c, a, b) => SpliceWithFdConnectionAsync(c, a, b, FdConnections.Options(c))), Extra: true),
        new("FdConnection Input.CopyToAsync(Output), UseSplice = false", c => RunAsync(c, (c, a, b) => CopyToWithFdConnectionAsync(c, a, b, FdConnections.NoSpliceOptions(c))), Extra: true),
        new("FdConnection, PipeCapacity = 0 (kernel default)", c => RunAsync(c, (c, a, b) => CopyWithFdConnectionAsync(c, a, b, FdConnections.KernelPipeSizeOptions(c))), Extra: true),
        new("FdConnection, ApplicationScheduler = Inline", c => RunAsync(c, (c, a, b) => CopyWithFdConnectionAsync(c, a, b, FdConnections.InlineOptions(c))), Extra: true),
        new("FdConnection, ReactorPolling.DedicatedThread", c => RunAsync(c, (c, a, b) => CopyWithFdConnectionAsync(c, a, b, FdConnections.DedicatedOptions(c))), Extra: true),
        new("FdConnection, ReactorPolling.HandOffToThreadPool", c => RunAsync(c, (c, a, b) => CopyWithFdConnectionAsync(c, a, b, FdConnections.HandOffOptions(c))), Extra: true),
        new("FdConnection, one reactor", c => RunAsync(c, (c, a, b) => CopyWithFdConnectionAsync(c, a, b, FdConnections.OneReactorOptions(c))), Extra: true),
        new("FdConnection, OutputPauseThreshold = 1 MiB", c => RunAsync(c, (c, a, b) => CopyWithFdConnectionAsync(c, a, b, FdConnections.LargeOutputOptions(c))), Extra: true),
    ];

    /// <summary>
    /// <see cref="RunAsync"/> for a copy that reports the CPU time it took, shown as
    /// <see cref="Sample.Secondary"/> in seconds per GiB.
    /// </summary>
    internal static async Task<Sample> RunMeasuredAsync(RunContext context, Func<RunContext, string, string, Task<TimeSpan>> copy)
    {
        TimeSpan cpu = default;
        var sample = await RunAsync(context, async (c, a, b) => cpu = await copy(c, a, b));
        return sample with { Secondary = cpu.TotalSeconds / ((double)context.Size / (1L << 30)) };
    }

    /// <summary>The harness's own CPU time around <paramref name="copy"/> (for in-process copies; the harness's other threads count too).</summary>
    internal static async Task<TimeSpan> InProcessCpuAsync(RunContext context, string source, string destination, Func<RunContext, string, string, Task> copy)
    {
        using var self = System.Diagnostics.Process.GetCurrentProcess();
        TimeSpan before = self.TotalProcessorTime;
        await copy(context, source, destination);
        self.Refresh();
        return self.TotalProcessorTime - before;
    }

    /// <summary><c>cat A &gt; B</c> as its own process, returning its CPU time.</summary>
    internal static Task<TimeSpan> CatMeasuredAsync(RunContext context, string source, string destination) =>
        Pipebridge.RunMeasuredAsync(context, "/bin/sh", "-c", "exec cat -- \"$0\" > \"$1\"", source, destination);

    /// <summary>One timed run: reader and writer children on fresh FIFOs A and B, <paramref name="copy"/> from A to B, hash checked.</summary>
    internal static async Task<Sample> RunAsync(RunContext context, Func<RunContext, string, string, Task> copy)
    {
        FifoRun.PrepareExpectedHash(context);
        string source = FifoRun.NewFifo(context, "copy-a.fifo");
        string destination = FifoRun.NewFifo(context, "copy-b.fifo");
        await using var reader = await FifoRun.StartReaderAsync(context, destination);
        await using var writer = await FifoRun.StartWriterAsync(context, source);
        await copy(context, source, destination);
        long start = await FifoRun.FinishWriterAsync(context, writer);
        var done = await reader.ExpectAsync("done ", context.CancellationToken);
        await reader.WaitForSuccessAsync(context.CancellationToken);
        FifoRun.Verify(context, Convert.ToUInt64(done[1], 16), long.Parse(done[2]));
        return Sample.Throughput(context.Size, start, long.Parse(done[0]));
    }

    /// <summary>The obvious user code: the library decides how the bytes move (splice when it can).</summary>
    private static async Task CopyToWithFdConnectionAsync(RunContext context, string source, string destination, FdConnectionOptions options)
    {
        var ct = context.CancellationToken;
        await using var connection = await FdConnection.OpenFifoAsync(source, destination, options, ct);
        await connection.Input.CopyToAsync(connection.Output, ct);
        await connection.Output.CompleteAsync();
    }

    private static async Task CopyWithFdConnectionAsync(RunContext context, string source, string destination, FdConnectionOptions options)
    {
        var ct = context.CancellationToken;
        await using var connection = await FdConnection.OpenFifoAsync(source, destination, options, ct);
        var input = connection.Input;
        var output = connection.Output;
        while (true)
        {
            var result = await input.ReadAsync(ct);
            foreach (var segment in result.Buffer)
            {
                output.Write(segment.Span);
            }

            input.AdvanceTo(result.Buffer.End);
            if (!result.Buffer.IsEmpty && (await output.FlushAsync(ct)).IsCompleted)
            {
                throw new InvalidOperationException("the destination FIFO's reader went away");
            }

            if (result.IsCompleted)
            {
                break;
            }
        }

        await input.CompleteAsync();
        await output.CompleteAsync();
    }

    /// <summary>The library's kernel-side copy: splice between the connection's two FIFO fds.</summary>
    private static async Task SpliceWithFdConnectionAsync(RunContext context, string source, string destination, FdConnectionOptions options)
    {
        var ct = context.CancellationToken;
        await using var connection = await FdConnection.OpenFifoAsync(source, destination, options, ct);
        var copier = new SpliceCopier(connection.InputFd, connection.OutputFd, context.Settings.BufferSize);
        await copier.CopyToEndAsync(ct);
    }

    internal static async Task CopyWithFileStreamsAsync(RunContext context, string source, string destination)
    {
        var ct = context.CancellationToken;
        int buffer = context.Settings.BufferSize;
        await using var from = await FifoRun.OpenBlockingAsync(
            () => new FileStream(source, FileMode.Open, FileAccess.Read, FileShare.ReadWrite, bufferSize: 0), ct);
        await using var to = await FifoRun.OpenBlockingAsync(
            () => new FileStream(destination, FileMode.Open, FileAccess.Write, FileShare.ReadWrite, bufferSize: 0), ct);
        await from.CopyToAsync(to, buffer, ct);
    }

    internal static async Task CopyWithCatAsync(RunContext context, string source, string destination)
    {
        // The shell opens B (the reader child is waiting), then cat opens A and the writer starts.
        await using var cat = ChildProcess.Start("/bin/sh", "-c", "exec cat -- \"$0\" > \"$1\"", source, destination);
        await cat.WaitForSuccessAsync(context.CancellationToken);
    }
}
