using System.Diagnostics;

namespace PipeTransport.Reactor;

/// <summary>
/// Every number behind the library's scheduling decisions (when a reactor yields, when it stops handing
/// the polling to the pool, how long a splice holds a reactor thread, which flushes leave the caller's
/// thread), named and explained once here; the code and docs elsewhere refer to these names.
/// </summary>
internal static class SchedulingConstants
{
    /// <summary>
    /// A reactor's yield, or a hand-off turn's wait in the pool's queue, that lasts longer than this (200 µs)
    /// means another thread used a time slice of this CPU: a yield to nobody returns in microseconds.
    /// </summary>
    public static readonly long SlowTurnTicks = Stopwatch.Frequency / 5_000;

    /// <summary>
    /// After a slow turn that was not worth it, a reactor stops yielding, or stops handing the polling off,
    /// for this long (100 ms): a CPU shared with busy threads then costs at most one slice per period.
    /// </summary>
    public static readonly long SuspensionTicks = Stopwatch.Frequency / 10;

    /// <summary>
    /// Events ready afterwards, or thread-pool work items completed meanwhile, that make a slow turn worth
    /// its slice: the slice went to a load generator or to this process's continuations, not a busy loop.
    /// </summary>
    public const int MinBatch = 4;

    /// <summary>
    /// Slow hand-off turns in a row that suspend the hand-off (with several CPUs): one alone is often the
    /// runtime's or the application's own thread; several in a row mean other processes hold the CPUs.
    /// </summary>
    public const int SlowTurnsBeforeSuspending = 2;

    /// <summary>
    /// <c>sched_yield</c> calls a splice copy makes after it drained a pipe source, before it waits: a polled
    /// pipe wakes its poller on every write, so a producer on this CPU that writes on first moves more per wake-up.
    /// </summary>
    public const int SpliceYieldsBeforeWaiting = 1;

    /// <summary>
    /// A splice wait callback moves at most this many chunks, and about <see cref="SpliceBytesPerCallback"/>,
    /// before the copy loop runs again: one busy copy must not hold a reactor thread from its other fds.
    /// </summary>
    public const int SpliceChunksPerCallback = 16;

    /// <summary>See <see cref="SpliceChunksPerCallback"/> (4 MiB: 16 chunks of 64 KiB, 4 of 1 MiB).</summary>
    public const int SpliceBytesPerCallback = 4 << 20;

    /// <summary>
    /// Default of <see cref="FdConnectionOptions.PoolSendThreshold"/> (64 KiB): a flush this big is bulk data,
    /// where writing on another core while the application produces beats saving a thread hop; smaller
    /// flushes (messages, most responses) are sent inline, the lowest latency.
    /// </summary>
    public const int PoolSendThreshold = 64 * 1024;

    /// <summary>
    /// With <see cref="FdConnectionOptions.CoalesceFlushes"/>, a flush that comes within this long (50 µs) of
    /// the connection's last write, with no input in between, is gathered with the flushes after it: one
    /// turn of the application is answering many requests (pipelined, multiplexed). Longer than the gap
    /// between the responses of one turn, shorter than a flush that waits for anything outside the process.
    /// </summary>
    public static readonly long GatherWindowTicks = Stopwatch.Frequency / 20_000;
}
