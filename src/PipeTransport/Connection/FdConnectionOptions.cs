using System.Buffers;
using System.Diagnostics.CodeAnalysis;
using System.IO.Pipelines;
using PipeTransport.Interop;

namespace PipeTransport;

/// <summary>Tuning for an <see cref="FdConnection"/>. One instance may be shared by many connections.</summary>
public sealed class FdConnectionOptions
{
    /// <summary>The defaults.</summary>
    internal static readonly FdConnectionOptions Default = new();

    /// <summary>
    /// Unread bytes in <see cref="FdConnection.Input"/> at which the transport stops reading the fd,
    /// so the kernel pushes back on the peer (a full pipe, a closed TCP window). Default 1 MiB.
    /// </summary>
    public long InputPauseThreshold { get; set; } = 1024 * 1024;

    /// <summary>Unread bytes at which reading resumes after a pause. Default 512 KiB.</summary>
    public long InputResumeThreshold { get; set; } = 512 * 1024;

    /// <summary>
    /// Unsent bytes in <see cref="FdConnection.Output"/> at which the application's
    /// <c>FlushAsync</c> stays incomplete until the fd drains. Default 1 MiB: with a threshold no
    /// larger than one write, every flush waits for the fd and costs a thread hand-off (measured: Unix
    /// socket throughput 2.6 → 4.4 GiB/s from 64 KiB to 1 MiB). Servers with many slow readers may
    /// want less (Kestrel uses 64 KiB).
    /// </summary>
    public long OutputPauseThreshold { get; set; } = 1024 * 1024;

    /// <summary>Unsent bytes at which a paused <c>FlushAsync</c> completes. Default 512 KiB.</summary>
    public long OutputResumeThreshold { get; set; } = 512 * 1024;

    /// <summary>
    /// Size of the pinned blocks the pipes are built from, which is also the most one <c>read</c>
    /// takes. Default 64 KiB (the default pipe capacity).
    /// </summary>
    public int BufferSize { get; set; } = 64 * 1024;

    /// <summary>Where the application's continuations run (reads of Input, flushes of Output). Default: the thread pool.</summary>
    public PipeScheduler ApplicationScheduler { get; set; } = PipeScheduler.ThreadPool;

    /// <summary>
    /// Run the transport's side inline: the receive loop on the reactor thread when the fd becomes
    /// readable, the send loop inside the application's <c>FlushAsync</c> (for flushes under
    /// <see cref="PoolSendThreshold"/>). Lowest latency; the default. When false, both run on the
    /// thread pool.
    /// </summary>
    public bool InlineTransportScheduling { get; set; } = true;

    /// <summary>
    /// The Input of a pipe's or FIFO's read end reads on demand, Go's way: the receive loop does not read
    /// ahead; a read of Input that finds nothing new runs the next read(2) on its own thread, and the reactor
    /// is asked only when the fd is empty. A reader that keeps up with its writer then never waits for another
    /// thread. Default true; false reads ahead on the reactor's thread, as sockets always do (a loop that
    /// writes each block elsewhere may gain from reads that overlap its writes). See docs/semantics.md.
    /// </summary>
    public bool ReadPipesOnDemand { get; set; } = true;

    /// <summary>
    /// With <see cref="InlineTransportScheduling"/>, a flush of <see cref="FdConnection.Output"/> that
    /// brings at least this many bytes wakes the send loop on a thread-pool thread instead of running
    /// it inside the application's <c>FlushAsync</c>: the application goes on producing while another
    /// core writes. Smaller flushes are sent inline, the lowest latency. Default and why:
    /// <see cref="Reactor.SchedulingConstants.PoolSendThreshold"/>; <see cref="int.MaxValue"/> sends every flush inline.
    /// </summary>
    public int PoolSendThreshold { get; set; } = Reactor.SchedulingConstants.PoolSendThreshold;

    /// <summary>
    /// With <see cref="InlineTransportScheduling"/>: a flush with more answers likely right behind it is
    /// not written inline: when the application's last <c>AdvanceTo</c> on Input left bytes it has not
    /// examined, or when the flush follows the connection's last write closely
    /// (<see cref="Reactor.SchedulingConstants.GatherWindowTicks"/>) with no input in between. The send
    /// loop then moves to the thread pool, behind the flushing thread's current work, and writes what the
    /// flushes of that turn gathered in one <c>writev</c> (pipelined requests, multiplexed streams). One
    /// request at a time is still answered inside its flush, so a request/response exchange keeps its
    /// latency. Default true; false writes every flush under <see cref="PoolSendThreshold"/> inline.
    /// </summary>
    public bool CoalesceFlushes { get; set; } = true;

    /// <summary>The reactors the fds are registered with. Default: <see cref="ReactorGroup.Default"/>.</summary>
    public ReactorGroup? ReactorGroup { get; set; }

    /// <summary>
    /// For <see cref="FdConnection.OpenFifoAsync"/>: hold a spare write end of the read FIFO so Input
    /// outlives its writers (a server, a <c>tail -f</c>-style reader): a writer closing is not EOF, and
    /// Input then ends only by
    /// <see cref="FdConnection.Abort"/> or disposal.
    /// </summary>
    public bool KeepFifoReaderOpen { get; set; }

    /// <summary>
    /// The kernel buffer asked for each pipe or FIFO fd of a connection, opened or adopted
    /// (<c>F_SETPIPE_SZ</c>): a bigger buffer means fewer wake-ups per megabyte for this side and the
    /// peer. Default <see cref="global::PipeTransport.PipeCapacity.DefaultConnectionCapacity"/>, capped at
    /// <c>/proc/sys/fs/pipe-max-size</c>. A pipe is never shrunk, and the process stops growing pipes once
    /// the bytes it added reach <c>/proc/sys/fs/pipe-user-pages-soft</c>'s worth; pipes past that keep the
    /// kernel's size. 0 leaves every pipe as it is.
    /// </summary>
    public int PipeCapacity { get; set; } = global::PipeTransport.PipeCapacity.DefaultConnectionCapacity;

    /// <summary>
    /// Let <c>Input.CopyToAsync(otherConnection.Output)</c> move the bytes inside the kernel with
    /// <c>splice(2)</c> when both fds are pipes or sockets and nothing is buffered on either side (see
    /// <see cref="SpliceCopier"/>); the copy's semantics are those of the pipes' copy. Default true; false
    /// always copies through the pipes.
    /// </summary>
    public bool UseSplice { get; set; } = true;

    /// <summary>Set <c>TCP_NODELAY</c> on TCP connections. Default true.</summary>
    public bool NoDelay { get; set; } = true;

    /// <summary>The data-path system calls; tests replace them to produce EINTR, EIO or short writes.</summary>
    internal ISyscalls Syscalls { get; set; } = LinuxSyscalls.Instance;

    /// <summary>
    /// The pool the pipes' blocks come from. By default (or set to null) the process-wide
    /// <see cref="PinnedBlockMemoryPool"/> of <see cref="BufferSize"/>, shared by every options object with
    /// that size (its cache limit and eviction: <see cref="PinnedBlockMemoryPool.DefaultMaxCachedBytes"/>,
    /// <see cref="PinnedBlockMemoryPool.DefaultEvictionPeriod"/>). Set a pool of your own for other
    /// limits: a <see cref="PinnedBlockMemoryPool"/> of <see cref="BufferSize"/>, or any pool (blocks that
    /// are not pinned are pinned per write, and a read takes at most its <c>MaxBufferSize</c>). The
    /// caller owns a pool it sets: the connections do not dispose it.
    /// </summary>
    [AllowNull]
    public MemoryPool<byte> MemoryPool
    {
        get => _memoryPool ?? PinnedBlockMemoryPool.ForBlockSize(BufferSize);
        set => _memoryPool = value;
    }

    private MemoryPool<byte>? _memoryPool;

    internal ReactorGroup Reactors => ReactorGroup ?? PipeTransport.ReactorGroup.Default;

    // PipeOptions are immutable and shared by every connection made with the same settings
    // (an idle connection should not carry copies of them).
    private PipeOptions?[] _pipeOptions = new PipeOptions?[4];
    private (long, long, long, long, int, PipeScheduler, MemoryPool<byte>?) _pipeOptionsKey;

    internal PipeOptions InputPipeOptions(bool inlineTransport) => PipeOptionsFor(input: true, inlineTransport);

    internal PipeOptions OutputPipeOptions(bool inlineTransport) => PipeOptionsFor(input: false, inlineTransport);

    private PipeOptions PipeOptionsFor(bool input, bool inlineTransport)
    {
        var key = (InputPauseThreshold, InputResumeThreshold, OutputPauseThreshold, OutputResumeThreshold, BufferSize, ApplicationScheduler, _memoryPool);
        PipeOptions?[] cache = Volatile.Read(ref _pipeOptions);
        if (!key.Equals(_pipeOptionsKey))
        {
            // The settings changed since the cached ones were made.
            cache = new PipeOptions?[4];
            _pipeOptionsKey = key;
            Volatile.Write(ref _pipeOptions, cache);
        }

        int index = (input ? 2 : 0) + (inlineTransport ? 1 : 0);
        return cache[index] ??= Create();

        // Output's writer side is Inline: a flush that waited is resumed on ApplicationScheduler by
        // Output's own writer (OutputWriter), which notes on the way whether it reports a send error.
        PipeOptions Create()
        {
            MemoryPool<byte> pool = MemoryPool;
            return input
                ? new PipeOptions(pool, ApplicationScheduler, inlineTransport ? PipeScheduler.Inline : PipeScheduler.ThreadPool, InputPauseThreshold, InputResumeThreshold, BufferSize, useSynchronizationContext: false)
                : new PipeOptions(pool, inlineTransport ? PipeScheduler.Inline : PipeScheduler.ThreadPool, PipeScheduler.Inline, OutputPauseThreshold, OutputResumeThreshold, BufferSize, useSynchronizationContext: false);
        }
    }

    /// <summary>A copy of these options with every setting as it is now (e.g. to run them on other reactors).</summary>
    /// <returns>The copy; changing one does not change the other.</returns>
    public FdConnectionOptions Clone()
    {
        var copy = (FdConnectionOptions)MemberwiseClone();
        copy._pipeOptions = new PipeOptions?[4]; // its own cache: the settings may diverge
        copy._pipeOptionsKey = default;
        return copy;
    }

    internal void Validate()
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(BufferSize, 1024, nameof(BufferSize));
        ArgumentOutOfRangeException.ThrowIfLessThan(PoolSendThreshold, 1, nameof(PoolSendThreshold));
        ArgumentOutOfRangeException.ThrowIfNegative(PipeCapacity, nameof(PipeCapacity));
        ArgumentOutOfRangeException.ThrowIfNegative(InputResumeThreshold, nameof(InputResumeThreshold));
        ArgumentOutOfRangeException.ThrowIfNegative(OutputResumeThreshold, nameof(OutputResumeThreshold));
        ArgumentOutOfRangeException.ThrowIfGreaterThan(InputResumeThreshold, InputPauseThreshold, nameof(InputResumeThreshold));
        ArgumentOutOfRangeException.ThrowIfGreaterThan(OutputResumeThreshold, OutputPauseThreshold, nameof(OutputResumeThreshold));
        ArgumentNullException.ThrowIfNull(ApplicationScheduler, nameof(ApplicationScheduler));
    }
}
