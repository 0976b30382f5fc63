namespace PipeTransport;

/// <summary>Who polls a reactor's epoll fd after a wake-up: its own thread, or the thread pool for a while.</summary>
public enum ReactorPolling
{
    /// <summary>
    /// <see cref="HandOffToThreadPool"/> when the process can run on one CPU only
    /// (<see cref="Environment.ProcessorCount"/> is 1: an affinity mask or a CPU quota), otherwise
    /// <see cref="DedicatedThread"/>.
    /// </summary>
    Auto,

    /// <summary>
    /// The reactor thread polls all the time: it dispatches readiness, the continuations run on the
    /// thread pool, and the reactor blocks again in <c>epoll_wait</c>. On several CPUs it runs beside
    /// them; on one CPU each wake-up costs the reactor thread a context switch in and out.
    /// </summary>
    DedicatedThread,

    /// <summary>
    /// After a wake-up that dispatched events, the polling passes to a thread-pool work item queued
    /// behind the continuations it scheduled. The pool thread that has run them asks epoll without
    /// blocking and dispatches what their writes made ready (a reply, the next request), so a
    /// conversation within one CPU goes on without context switches; the first time it finds nothing
    /// ready it hands the polling back to the reactor thread, which blocks. No pool thread ever blocks
    /// in <c>epoll_wait</c>. With several CPUs, when turns keep waiting long in the queue while the pool
    /// runs almost nothing (other processes hold the CPUs, and with nobody asleep in <c>epoll_wait</c> a
    /// reply would wait for their slices), the reactor thread polls alone for a while
    /// (<see cref="ReactorMode.SuspendsHandOffWhenSlow"/>; the numbers: <see cref="Reactor.SchedulingConstants"/>).
    /// </summary>
    HandOffToThreadPool,
}
