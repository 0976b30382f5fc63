namespace PipeTransport;

using PipeTransport.Reactor;

/// <summary>
/// A set of epoll reactors (one thread each). New fds are spread over them round-robin. The
/// process-wide <see cref="Default"/> group starts on first use with one reactor per processor, polling
/// as <see cref="ReactorPolling.Auto"/> picks.
/// </summary>
public sealed class ReactorGroup : IDisposable
{
    private static readonly Lazy<ReactorGroup> LazyDefault = new(() => new ReactorGroup(Environment.ProcessorCount));
    private readonly EpollReactor[] _reactors;
    private int _next = -1;

    /// <summary>Starts <paramref name="reactorCount"/> reactor threads that yield before they block (<see cref="YieldsBeforeWaiting"/>).</summary>
    /// <param name="reactorCount">How many reactors (threads, epoll fds) the group runs.</param>
    public ReactorGroup(int reactorCount)
        : this(reactorCount, yieldBeforeWaiting: true)
    {
    }

    /// <summary>Starts <paramref name="reactorCount"/> reactor threads, polling as <see cref="ReactorPolling.Auto"/> picks.</summary>
    /// <param name="reactorCount">How many reactors (threads, epoll fds) the group runs.</param>
    /// <param name="yieldBeforeWaiting">See <see cref="YieldsBeforeWaiting"/>.</param>
    public ReactorGroup(int reactorCount, bool yieldBeforeWaiting)
        : this(reactorCount, yieldBeforeWaiting, ReactorPolling.Auto)
    {
    }

    /// <summary>Starts <paramref name="reactorCount"/> reactor threads.</summary>
    /// <param name="reactorCount">How many reactors (threads, epoll fds) the group runs.</param>
    /// <param name="yieldBeforeWaiting">See <see cref="YieldsBeforeWaiting"/> (with the hand-off, the pool's turn yields before it gives the polling back).</param>
    /// <param name="polling">Who polls after a wake-up; see <see cref="ReactorPolling"/>.</param>
    public ReactorGroup(int reactorCount, bool yieldBeforeWaiting, ReactorPolling polling)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(reactorCount, 1);
        if (!Enum.IsDefined(polling))
        {
            throw new ArgumentOutOfRangeException(nameof(polling), polling, "not a ReactorPolling value");
        }

        // One CPU: every wake-up of a dedicated reactor thread costs a context switch in and out.
        int processors = Environment.ProcessorCount;
        ReactorPolling resolved = polling != ReactorPolling.Auto ? polling
            : processors == 1 ? ReactorPolling.HandOffToThreadPool : ReactorPolling.DedicatedThread;
        Mode = new ReactorMode(resolved, yieldBeforeWaiting, processors);
        _reactors = new EpollReactor[reactorCount];
        for (int i = 0; i < reactorCount; i++)
        {
            _reactors[i] = new EpollReactor($"PipeTransport reactor {i}", Mode);
        }
    }

    /// <summary>
    /// How this group schedules its polling, as decided when it started: who polls, whether it yields
    /// before waiting, and on how many CPUs it decided.
    /// </summary>
    public ReactorMode Mode { get; }

    /// <summary>Who polls after a wake-up (<see cref="ReactorPolling.Auto"/> resolved when the group started).</summary>
    public ReactorPolling Polling => Mode.Polling;

    /// <summary>
    /// True (the default): after a wake-up that dispatched events, a reactor thread calls
    /// <c>sched_yield</c> and asks epoll once more without blocking before it sleeps, so the threads
    /// those events woke on its CPU (application continuations, a producer writing the next bytes) run
    /// first and what they cause is picked up without a sleep and a wake-up. It costs two syscalls per
    /// wake-up when nothing else wants the CPU, and the reactor stops yielding for a while when yields
    /// keep handing the CPU to threads that do nothing for it (the rule and its numbers:
    /// <see cref="Reactor.YieldPolicy"/>, <see cref="Reactor.SchedulingConstants"/>).
    /// False: the reactor blocks in <c>epoll_wait</c> at once. With <see cref="ReactorPolling.HandOffToThreadPool"/>
    /// the same yield, under the same rule, comes before the pool's turn hands the polling back.
    /// </summary>
    public bool YieldsBeforeWaiting => Mode.YieldsBeforeWaiting;

    /// <summary>The process-wide group (one reactor per processor), started on first use.</summary>
    public static ReactorGroup Default => LazyDefault.Value;

    /// <summary>How many reactors the group runs.</summary>
    public int Count => _reactors.Length;

    /// <summary>How many fds each reactor has registered now.</summary>
    public IReadOnlyList<int> RegisteredCounts => Array.ConvertAll(_reactors, r => r.RegisteredCount);

    internal EpollReactor Next() => _reactors[(int)((uint)Interlocked.Increment(ref _next) % (uint)_reactors.Length)];

    /// <summary>Stops every reactor thread. Fds still registered get no more readiness events.</summary>
    public void Dispose()
    {
        foreach (EpollReactor reactor in _reactors)
        {
            reactor.Dispose();
        }
    }
}
