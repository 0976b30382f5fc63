using System.Diagnostics;
using PipeTransport.Diagnostics;
using PipeTransport.Interop;

namespace PipeTransport.Reactor;

/// <summary>
/// One thread, one epoll fd, one eventfd to wake it. Each fd is registered once, edge-triggered, with
/// a token (slot index + generation) as its user data, so an event that arrives for a registration
/// that has since been removed (and whose fd number may have been reused) is dropped.
/// </summary>
/// <remarks>
/// With hand-off (<see cref="PipeTransport.ReactorPolling.HandOffToThreadPool"/>), a wake-up that dispatched events
/// passes the polling to a thread-pool work item queued behind the continuations it scheduled: the
/// pool thread that runs them then asks epoll without blocking and dispatches what their writes made
/// ready, so on one CPU a request and its reply need no context switch. The first time that work item
/// finds nothing ready it hands the polling back to the reactor thread, which blocks in epoll_wait.
/// Exactly one of the two polls at any time, so dispatch stays serial per reactor.
/// </remarks>
internal sealed class EpollReactor : IDisposable, IThreadPoolWorkItem
{
    [ThreadStatic]
    private static EpollReactor? t_dispatching;

    private const int BatchSize = 256;
    private const ulong WakeToken = ulong.MaxValue;
    private static int s_started;

    private readonly SafeFdHandle _epoll;
    private readonly SafeFdHandle _wake;
    private readonly Thread _thread;
    private readonly object _gate = new();
    private readonly Stack<int> _freeIndices = new();
    private Registration?[] _table = new Registration?[64];
    private int _used;
    private uint _generation;
    private readonly bool _yieldBeforeWaiting;
    private readonly bool _handOff;
    private readonly bool _suspendHandOffWhenSlow;
    private readonly EpollEventBuffer? _poolEvents;
    private readonly SemaphoreSlim _pollingReturned = new(0, 1);
    private YieldPolicy _yieldPolicy;
    private long _turnQueuedAt;
    private long _turnQueuedWork;
    private long _handOffSuspendedUntil;
    private int _slowTurns;
    // Continuations that gave the reactor thread back for one turn (see TryDeferToNextTurn); only that thread touches it.
    private readonly Queue<Action> _deferred = new();
    private long _wakeUps; // written by whichever thread polls (one at a time), read by the metrics
    private long _events;
    private volatile bool _stopping;

    public EpollReactor(string name, ReactorMode mode)
    {
        _yieldBeforeWaiting = mode.YieldsBeforeWaiting;
        _handOff = mode.HandsOffToThreadPool;
        _suspendHandOffWhenSlow = mode.SuspendsHandOffWhenSlow;
        int epfd = Sys.EpollCreate();
        if (epfd < 0)
        {
            throw PipeTransportException.FromResult(epfd, "epoll_create1", null);
        }

        _epoll = new SafeFdHandle(epfd);
        int efd = Sys.EventFd();
        if (efd < 0)
        {
            _epoll.Dispose();
            throw PipeTransportException.FromResult(efd, "eventfd", null);
        }

        _wake = new SafeFdHandle(efd);
        int r = Sys.EpollAdd(epfd, efd, Libc.EPOLLIN | Libc.EPOLLET, WakeToken);
        if (r < 0)
        {
            _wake.Dispose();
            _epoll.Dispose();
            throw PipeTransportException.FromResult(r, "epoll_ctl(ADD)", $"eventfd {efd}");
        }

        if (_handOff)
        {
            _poolEvents = new EpollEventBuffer(BatchSize);
        }

        MetricsId = (Interlocked.Increment(ref s_started) - 1).ToString(System.Globalization.CultureInfo.InvariantCulture);
        TransportMetrics.AddReactor(this);
        _thread = new Thread(Run) { IsBackground = true, Name = name };
        _thread.UnsafeStart();
    }

    /// <summary>The reactor's <c>pipetransport.reactor</c> tag: the number of reactors the process started before it.</summary>
    public string MetricsId { get; }

    /// <summary>Polls that returned events (metrics).</summary>
    public long WakeUps => Volatile.Read(ref _wakeUps);

    /// <summary>Readiness events dispatched (metrics).</summary>
    public long EventsDispatched => Volatile.Read(ref _events);

    /// <summary>Whether a wake-up passes the polling to the thread pool (<see cref="ReactorMode.HandsOffToThreadPool"/>).</summary>
    public bool HandsOff => _handOff;

    /// <summary>Slow pool turns have suspended the hand-off: the reactor thread polls alone for a while.</summary>
    public bool HandOffSuspended => _handOff && Stopwatch.GetTimestamp() < Volatile.Read(ref _handOffSuspendedUntil);

    /// <summary>How many fds are registered now.</summary>
    public int RegisteredCount
    {
        get
        {
            lock (_gate)
            {
                return _used - _freeIndices.Count;
            }
        }
    }

    /// <summary>
    /// Registers <paramref name="registration"/>'s fd (which must be non-blocking). Returns false with
    /// the negated errno in <paramref name="error"/> when epoll refuses the fd (<c>EPERM</c>: regular files).
    /// </summary>
    public bool TryRegister(Registration registration, out int error)
    {
        lock (_gate)
        {
            ObjectDisposedException.ThrowIf(_stopping, this);
            int index;
            if (_freeIndices.Count > 0)
            {
                index = _freeIndices.Pop();
            }
            else
            {
                if (_used == _table.Length)
                {
                    Array.Resize(ref _table, _table.Length * 2);
                }

                index = _used++;
            }

            registration.Attach(this, index, unchecked(++_generation));
            Volatile.Write(ref _table[index], registration);
        }

        error = Sys.EpollAdd(_epoll.Fd, registration.Fd, registration.Events, registration.Token);
        if (error < 0)
        {
            Release(registration);
            return false;
        }

        error = 0;
        return true;
    }

    /// <summary>Arms a one-shot registration again; the caller holds the fd open. An edge pending now is reported at once.</summary>
    internal void Rearm(Registration registration, int fd) => Sys.EpollMod(_epoll.Fd, fd, registration.Events, registration.Token);

    internal void Remove(Registration registration)
    {
        // The fd is removed explicitly rather than by close: another descriptor may share the
        // open file description and keep it in the epoll set. ENOENT/EBADF mean it is gone already.
        Sys.EpollDel(_epoll.Fd, registration.Fd);
        Release(registration);
    }

    private void Release(Registration registration)
    {
        lock (_gate)
        {
            if (ReferenceEquals(_table[registration.Index], registration))
            {
                Volatile.Write(ref _table[registration.Index], null);
                _freeIndices.Push(registration.Index);
            }
        }
    }

    private void Run()
    {
        using var events = new EpollEventBuffer(BatchSize);
        bool dispatched = false;
        bool handedOff = false;
        while (!_stopping)
        {
            // After a wake-up that dispatched events, yield once and look again without blocking
            // (see YieldPolicy for when that pays and when the reactor stops doing it). After a
            // hand-off the pool's turn did that before it gave the polling back. With continuations
            // deferred there is work to do: look without blocking.
            bool deferred = _deferred.Count > 0;
            int n = deferred ? events.Wait(_epoll.Fd, 0) : dispatched && !handedOff ? YieldThenLook(events) : 0;

            if (n == 0 && !deferred)
            {
                n = events.Wait(_epoll.Fd, -1);
            }

            dispatched = n > 0;
            if (n < 0)
            {
                Environment.FailFast($"epoll_wait failed: {PipeTransportException.ToErrno(-n)}");
            }

            Dispatch(events, n);
            RunDeferred();
            handedOff = _handOff && dispatched && _deferred.Count == 0 && !_stopping && (!_suspendHandOffWhenSlow || Stopwatch.GetTimestamp() >= _handOffSuspendedUntil);
            if (handedOff)
            {
                // The pool polls until it finds nothing ready; this thread waits for its turn back.
                QueuePoolTurn();
                _pollingReturned.Wait();
            }
        }

        // Stopped with continuations still deferred: they finish on the pool (their waits see the closed fds).
        while (_deferred.TryDequeue(out Action? continuation))
        {
            ThreadPool.UnsafeQueueUserWorkItem(static c => c(), continuation, preferLocal: false);
        }

        TransportMetrics.RemoveReactor(this);
        _poolEvents?.Dispose();
        lock (_gate)
        {
            // Under the lock Dispose signals the eventfd in, so it never writes to a closed fd number.
            _wake.Dispose();
            _epoll.Dispose();
        }
    }

    /// <summary>
    /// On this reactor's own thread, queues <paramref name="continuation"/> to run after the fds that are
    /// ready now have been dispatched: a long job (a splice copy) gives the other fds their turn without
    /// leaving the thread, whose epoll then need not wake for every edge of the job's own fds. Returns false
    /// anywhere else (another thread, or a thread-pool turn at polling).
    /// </summary>
    public static bool TryDeferToNextTurn(Action continuation)
    {
        EpollReactor? reactor = t_dispatching;
        if (reactor is null || Thread.CurrentThread != reactor._thread || reactor._stopping)
        {
            return false;
        }

        reactor._deferred.Enqueue(continuation);
        return true;
    }

    /// <summary>True on a thread that is dispatching a reactor's events or deferred continuations.</summary>
    public static bool IsDispatching => t_dispatching is not null;

    /// <summary>
    /// Awaiting it gives the reactor thread to its other fds for one turn and continues after them on the
    /// same thread (<see cref="TryDeferToNextTurn"/>), or on the thread pool when not on a reactor thread.
    /// </summary>
    public static NextTurnAwaitable NextTurn() => default;

    /// <summary>See <see cref="NextTurn"/>.</summary>
    internal readonly struct NextTurnAwaitable : System.Runtime.CompilerServices.ICriticalNotifyCompletion
    {
        public NextTurnAwaitable GetAwaiter() => this;

        public bool IsCompleted => false;

        public void GetResult()
        {
        }

        public void OnCompleted(Action continuation) => UnsafeOnCompleted(continuation);

        public void UnsafeOnCompleted(Action continuation)
        {
            if (!TryDeferToNextTurn(continuation))
            {
                ThreadPool.UnsafeQueueUserWorkItem(static c => c(), continuation, preferLocal: false);
            }
        }
    }

    /// <summary>Runs the continuations deferred before this turn (not those they defer again: the next turn's).</summary>
    private void RunDeferred()
    {
        if (_deferred.Count == 0)
        {
            return;
        }

        EpollReactor? outer = t_dispatching;
        t_dispatching = this;
        try
        {
            for (int count = _deferred.Count; count > 0; count--)
            {
                Action continuation = _deferred.Dequeue();
                try
                {
                    continuation();
                }
                catch (Exception e)
                {
                    ThreadPool.UnsafeQueueUserWorkItem(static ex => throw ex, e, preferLocal: false);
                }
            }
        }
        finally
        {
            t_dispatching = outer;
        }
    }

    /// <summary>The thread pool's turn at polling (hand-off only): dispatch what is ready, or give the polling back.</summary>
    void IThreadPoolWorkItem.Execute()
    {
        EpollEventBuffer events = _poolEvents!;
        long now = _suspendHandOffWhenSlow ? Stopwatch.GetTimestamp() : 0;
        if (_suspendHandOffWhenSlow && now - _turnQueuedAt > SchedulingConstants.SlowTurnTicks
            && ThreadPool.CompletedWorkItemCount - _turnQueuedWork < SchedulingConstants.MinBatch)
        {
            // A slow turn while the pool ran almost nothing: some other thread held the CPU. When
            // other processes keep doing so, nobody is asleep in epoll_wait for readiness to wake, so
            // every reply would wait for a slice; then the reactor thread, which epoll does wake, polls
            // alone for a while. Only with several CPUs (ReactorMode.SuspendsHandOffWhenSlow): on one,
            // the other process is as often the producer this reactor reads (a FIFO writer filling the
            // pipe during the wait), and the reactor thread's wake-ups would wait for the same slices.
            if (++_slowTurns >= SchedulingConstants.SlowTurnsBeforeSuspending)
            {
                _slowTurns = 0;
                _handOffSuspendedUntil = now + SchedulingConstants.SuspensionTicks;
                _pollingReturned.Release();
                return;
            }
        }
        else
        {
            _slowTurns = 0;
        }

        int n = _stopping ? 0 : events.Wait(_epoll.Fd, 0);
        if (n == 0 && !_stopping)
        {
            // Nothing ready: before handing the polling back, yield once and look again, so a peer on
            // this CPU (a client process, another thread) can answer first (the same rule and back-off
            // as the reactor thread's yield; one poller at a time, so they share the policy).
            n = YieldThenLook(events);
        }

        if (n <= 0)
        {
            if (n < 0)
            {
                Environment.FailFast($"epoll_wait failed: {PipeTransportException.ToErrno(-n)}");
            }

            _pollingReturned.Release();
            return;
        }

        Dispatch(events, n);
        QueuePoolTurn();
    }

    /// <summary>Queues the pool's turn at polling, noting when (the turn checks how long it waited).</summary>
    private void QueuePoolTurn()
    {
        if (_suspendHandOffWhenSlow)
        {
            _turnQueuedAt = Stopwatch.GetTimestamp();
            _turnQueuedWork = ThreadPool.CompletedWorkItemCount;
        }

        ThreadPool.UnsafeQueueUserWorkItem(this, preferLocal: false);
    }

    /// <summary>
    /// Yields the CPU once and asks epoll without blocking, when <see cref="YieldPolicy"/> says it pays
    /// (and the group yields at all); returns the events ready then, 0 when it did not yield.
    /// </summary>
    private int YieldThenLook(EpollEventBuffer events)
    {
        if (!_yieldBeforeWaiting)
        {
            return 0;
        }

        long before = Stopwatch.GetTimestamp();
        if (!_yieldPolicy.ShouldYield(before))
        {
            return 0;
        }

        long workBefore = ThreadPool.CompletedWorkItemCount;
        Sys.Yield();
        long after = Stopwatch.GetTimestamp();
        int n = events.Wait(_epoll.Fd, 0);
        _yieldPolicy.OnYielded(before, after, n, ThreadPool.CompletedWorkItemCount - workBefore);
        return n;
    }

    private void Dispatch(EpollEventBuffer events, int n)
    {
        if (n > 0)
        {
            _wakeUps++;
        }

        EpollReactor? outer = t_dispatching;
        t_dispatching = this;
        try
        {
            Registration?[] table = Volatile.Read(ref _table);
            for (int i = 0; i < n; i++)
            {
                ulong token = events.Data(i);
                if (token == WakeToken)
                {
                    Sys.Drain(_wake.Fd);
                    continue;
                }

                int index = (int)(uint)token;
                Registration? registration = (uint)index < (uint)table.Length ? Volatile.Read(ref table[index]) : null;
                if (registration is null || registration.Generation != (uint)(token >> 32))
                {
                    continue; // stale: the registration was removed after the kernel queued this event.
                }

                _events++;
                try
                {
                    registration.OnEvents(events.Events(i));
                }
                catch (Exception e)
                {
                    // A continuation that runs inline must not take the reactor down with it.
                    ThreadPool.UnsafeQueueUserWorkItem(static ex => throw ex, e, preferLocal: false);
                }
            }
        }
        finally
        {
            t_dispatching = outer;
        }
    }

    public void Dispose()
    {
        lock (_gate)
        {
            if (!_stopping)
            {
                _stopping = true;
                Sys.SignalEventFd(_wake.Fd);
            }
        }

        // Not joined from inside this reactor's own dispatch (either thread): the join would wait for
        // itself. A later Dispose from outside joins (the thread closes the epoll fd and eventfd).
        if (Thread.CurrentThread != _thread && t_dispatching != this)
        {
            _thread.Join();
        }
    }
}
