namespace PipeTransport.Reactor;

/// <summary>
/// Whether a reactor yields its CPU once before it blocks in <c>epoll_wait</c>, after a wake-up that
/// dispatched events. The yield lets the threads those events made runnable (the application's
/// continuations, a producer on the same CPU) go first; the reactor then asks epoll again without
/// blocking, so what came meanwhile is picked up as one batch, without a sleep and a wake-up.
/// <para>
/// A yield that returns at once costs one system call. A slow one (<see cref="SchedulingConstants.SlowTurnTicks"/>)
/// means some thread used a time slice of this CPU. That pays when the slice gathered a batch
/// (<see cref="SchedulingConstants.MinBatch"/> events ready afterwards, or pool work items done meanwhile).
/// One that gathered neither handed the CPU to a thread that does nothing for this reactor (a busy
/// loop); every wake-up would then lose a slice, so the reactor stops yielding for
/// <see cref="SchedulingConstants.SuspensionTicks"/>.
/// </para>
/// </summary>
internal struct YieldPolicy
{
    private long _noYieldUntil;

    /// <summary>Whether to yield now (<paramref name="now"/> in <see cref="System.Diagnostics.Stopwatch"/> ticks).</summary>
    public readonly bool ShouldYield(long now) => now >= _noYieldUntil;

    /// <summary>
    /// Records one yield: it started at <paramref name="before"/> and returned at <paramref name="after"/>;
    /// afterwards epoll had <paramref name="eventsAfter"/> events ready, and the thread pool completed
    /// <paramref name="poolWorkDuring"/> work items while it lasted.
    /// </summary>
    public void OnYielded(long before, long after, int eventsAfter, long poolWorkDuring)
    {
        if (after - before > SchedulingConstants.SlowTurnTicks
            && eventsAfter < SchedulingConstants.MinBatch && poolWorkDuring < SchedulingConstants.MinBatch)
        {
            _noYieldUntil = after + SchedulingConstants.SuspensionTicks;
        }
    }
}
