using System.Diagnostics;

namespace PipeTransport.Reactor;

/// <summary>
/// Whether a reactor yields its CPU once before it blocks in <c>epoll_wait</c>, after a wake-up that
/// dispatched events. The yield lets the threads those events made runnable (the application's
/// continuations, a producer on the same CPU) go first; the reactor then asks epoll again without
/// blocking, so what came meanwhile is picked up as one batch, without a sleep and a wake-up.
/// <para>
/// A yield that returns at once costs one system call. A long one (over 200 µs) means some thread
/// used a time slice of this CPU. That pays when the slice gathered a batch: at least
/// <see cref="MinBatch"/> events ready when the reactor looks again (a load generator sending on many
/// connections), or at least <see cref="MinBatch"/> thread-pool work items done meanwhile (this
/// process's own continuations ran). A long yield that gathered neither handed the CPU to a thread
/// that does nothing for this reactor (a busy loop); every wake-up would then lose a slice, which turns
/// a 25 µs round trip into milliseconds, so the reactor stops yielding for 100 ms.
/// </para>
/// </summary>
internal struct YieldPolicy
{
    /// <summary>Events or pool work items a long yield must have gathered to be worth its slice.</summary>
    internal const int MinBatch = 4;

    internal static readonly long LongYieldTicks = Stopwatch.Frequency / 5_000;   // 200 µs
    internal static readonly long BackoffTicks = Stopwatch.Frequency / 10;        // 100 ms

    private long _noYieldUntil;

    /// <summary>Whether to yield now (<paramref name="now"/> in <see cref="Stopwatch"/> ticks).</summary>
    public readonly bool ShouldYield(long now) => now >= _noYieldUntil;

    /// <summary>
    /// Records one yield: it started at <paramref name="before"/> and returned at <paramref name="after"/>;
    /// afterwards epoll had <paramref name="eventsAfter"/> events ready, and the thread pool completed
    /// <paramref name="poolWorkDuring"/> work items while it lasted.
    /// </summary>
    public void OnYielded(long before, long after, int eventsAfter, long poolWorkDuring)
    {
        if (after - before > LongYieldTicks && eventsAfter < MinBatch && poolWorkDuring < MinBatch)
        {
            _noYieldUntil = after + BackoffTicks;
        }
    }
}
