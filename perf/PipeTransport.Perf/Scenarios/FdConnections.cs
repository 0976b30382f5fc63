using PipeTransport.Perf.Harness;

namespace PipeTransport.Perf.Scenarios;

/// <summary>How the scenarios set up the subject, in one place.</summary>
internal static class FdConnections
{
    private static readonly ReactorGroup OneReactor = new(1);
    private static readonly Lazy<ReactorGroup> NoYieldReactors = new(() => new ReactorGroup(Environment.ProcessorCount, yieldBeforeWaiting: false));
    private static readonly Lazy<ReactorGroup> DedicatedReactors = new(() => new ReactorGroup(Environment.ProcessorCount, true, ReactorPolling.DedicatedThread));
    private static readonly Lazy<ReactorGroup> HandOffReactors = new(() => new ReactorGroup(Environment.ProcessorCount, true, ReactorPolling.HandOffToThreadPool));

    /// <summary>The library's defaults, with the run's buffer size as the pool block size.</summary>
    public static FdConnectionOptions Options(RunContext context) => new() { BufferSize = context.Settings.BufferSize };

    /// <summary><see cref="Options"/> with copies between connections through the pipes (<c>UseSplice = false</c>).</summary>
    public static FdConnectionOptions NoSpliceOptions(RunContext context) => new() { BufferSize = context.Settings.BufferSize, UseSplice = false };

    /// <summary><see cref="Options"/> with every pipe left at the kernel's capacity (<c>PipeCapacity = 0</c>).</summary>
    public static FdConnectionOptions KernelPipeSizeOptions(RunContext context) => new() { BufferSize = context.Settings.BufferSize, PipeCapacity = 0 };

    /// <summary>
    /// <see cref="Options"/> with the application's continuations run inline too (on the reactor
    /// thread): no thread hop per read, at the price of blocking the reactor while the application runs.
    /// </summary>
    public static FdConnectionOptions InlineOptions(RunContext context) => new()
    {
        BufferSize = context.Settings.BufferSize,
        ApplicationScheduler = System.IO.Pipelines.PipeScheduler.Inline,
    };

    /// <summary>
    /// Transport work on the thread pool (<c>InlineTransportScheduling = false</c>) and the
    /// application inline after it: the reactor only dispatches, and one pool thread reads the fd and
    /// runs the application (what .NET's sockets do), so no second hop per read.
    /// </summary>
    public static FdConnectionOptions PoolOptions(RunContext context) => new()
    {
        BufferSize = context.Settings.BufferSize,
        ApplicationScheduler = System.IO.Pipelines.PipeScheduler.Inline,
        InlineTransportScheduling = false,
    };

    /// <summary><see cref="Options"/> on reactors that block in epoll_wait at once (no yield first).</summary>
    public static FdConnectionOptions NoYieldOptions(RunContext context) => OnReactors(context, NoYieldReactors.Value);

    /// <summary><see cref="Options"/> on reactors whose own thread always polls (<see cref="ReactorPolling.DedicatedThread"/>).</summary>
    public static FdConnectionOptions DedicatedOptions(RunContext context) => OnReactors(context, DedicatedReactors.Value);

    /// <summary><see cref="Options"/> on reactors that hand the polling to the pool after a wake-up (<see cref="ReactorPolling.HandOffToThreadPool"/>).</summary>
    public static FdConnectionOptions HandOffOptions(RunContext context) => OnReactors(context, HandOffReactors.Value);

    /// <summary><see cref="Options"/> with every flush sent inside <c>FlushAsync</c> (no bulk send on the pool).</summary>
    public static FdConnectionOptions InlineSendOptions(RunContext context) => new()
    {
        BufferSize = context.Settings.BufferSize,
        PoolSendThreshold = int.MaxValue,
    };

    /// <summary>
    /// <see cref="Options"/> with every fd on one reactor, so both fds of a FIFO pair share a thread
    /// (the default group hands each fd to the next reactor, round-robin).
    /// </summary>
    public static FdConnectionOptions OneReactorOptions(RunContext context) => OnReactors(context, OneReactor);

    /// <summary>
    /// <see cref="Options"/> with a 1 MiB output pause threshold (resume at 512 KiB): with 64 KiB
    /// writes the default 64 KiB threshold makes every <c>FlushAsync</c> wait for the fd to drain.
    /// </summary>
    public static FdConnectionOptions LargeOutputOptions(RunContext context) => new()
    {
        BufferSize = context.Settings.BufferSize,
        OutputPauseThreshold = 1 << 20,
        OutputResumeThreshold = 512 << 10,
    };

    /// <summary><see cref="Options"/> on <paramref name="reactors"/>.</summary>
    private static FdConnectionOptions OnReactors(RunContext context, ReactorGroup reactors) => new()
    {
        BufferSize = context.Settings.BufferSize,
        ReactorGroup = reactors,
    };

    /// <summary>A connection whose Input reads the FIFO at <paramref name="path"/>.</summary>
    public static async Task<FdConnection> OpenFifoReaderAsync(string path, FdConnectionOptions options, CancellationToken cancellationToken)
    {
        // OpenFifoAsync opens a pair; a lone read end is adopted, opened the way the baselines open
        // theirs (a blocking open, outside the timed window).
        var handle = await FifoRun.OpenBlockingAsync(
            () => File.OpenHandle(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite), cancellationToken);
        return FdConnection.FromFd(handle, options);
    }
}
