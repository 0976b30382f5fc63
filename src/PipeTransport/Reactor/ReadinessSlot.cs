using System.Runtime.CompilerServices;
using System.Threading.Tasks.Sources;

namespace PipeTransport.Reactor;

/// <summary>
/// One direction's readiness of a registered fd: a three-state machine (not ready, ready, someone
/// waiting) that never loses an edge. Edge-triggered epoll reports each transition once; if it
/// arrives between the caller's <c>EAGAIN</c> and its wait, the slot is left <c>Ready</c> and the wait
/// returns at once. One waiter at a time; the wait is a reusable <see cref="IValueTaskSource"/>, so
/// waiting allocates nothing. A <see cref="Registration"/> is its fd's read slot (one object per fd,
/// like Go's pollDesc); write slots are separate objects made on first use.
/// </summary>
internal class ReadinessSlot : IValueTaskSource
{
    private const int NotReady = 0;
    private const int Ready = 1;
    private const int Waiting = 2;
    private const int Closed = 3;

    // Starts Ready: nothing is known about a new fd, so the first attempt tries the syscall.
    private int _state = Ready;
    private ManualResetValueTaskSourceCore<bool> _core;
    // Made on the first cancellable wait and reused: most slots never see a token.
    private StrongBox<CancellationTokenRegistration>? _cancellation;
    private Exception? _closeReason;

    public bool WaitsClosed => Volatile.Read(ref _state) == Closed;

    /// <summary>Someone waits for the next edge (tests wait on this state).</summary>
    internal bool IsWaiting => Volatile.Read(ref _state) == Waiting;

    /// <summary>For diagnostics: the state and the current wait's status.</summary>
    internal string DebugState => $"{Volatile.Read(ref _state) switch { NotReady => "NotReady", Ready => "Ready", Waiting => "Waiting", _ => "Closed" }}/{_core.GetStatus(_core.Version)}/v{_core.Version}";

    /// <summary>
    /// Returns at once if an edge arrived since the last wait (consuming it), otherwise when the next
    /// edge arrives, the token is cancelled or the slot is closed.
    /// </summary>
    /// <param name="runContinuationAsynchronously">False lets the awaiting code run on the reactor thread.</param>
    /// <param name="cancellationToken">Cancels the wait.</param>
    public ValueTask WaitAsync(bool runContinuationAsynchronously, CancellationToken cancellationToken = default)
    {
        while (true)
        {
            int state = Volatile.Read(ref _state);
            switch (state)
            {
                case Ready:
                    if (Interlocked.CompareExchange(ref _state, NotReady, Ready) == Ready)
                    {
                        return default;
                    }

                    continue;
                case Closed:
                    return ValueTask.FromException(CloseException());
                case Waiting:
                    return ValueTask.FromException(new InvalidOperationException("Another operation is already waiting for this fd to become ready in the same direction."));
            }

            if (cancellationToken.IsCancellationRequested)
            {
                return ValueTask.FromCanceled(cancellationToken);
            }

            _core.Reset();
            _core.RunContinuationsAsynchronously = runContinuationAsynchronously;
            if (Interlocked.CompareExchange(ref _state, Waiting, NotReady) != NotReady)
            {
                continue;
            }

            OnParked();
            if (cancellationToken.CanBeCanceled)
            {
                (_cancellation ??= new StrongBox<CancellationTokenRegistration>()).Value = cancellationToken.UnsafeRegister(
                    static (slot, token) => ((ReadinessSlot)slot!).Cancel(token), this);
            }

            return new ValueTask(this, _core.Version);
        }
    }

    /// <summary>
    /// <see cref="WaitAsync"/> for a waiter that presents the wait through an
    /// <see cref="IValueTaskSource"/> of its own (forwarding <c>GetStatus</c>, <c>OnCompleted</c> and
    /// <c>GetResult</c> to this slot with <paramref name="token"/>), so that it needs no async state
    /// machine. If the returned task is not complete, <paramref name="token"/> names the wait.
    /// </summary>
    public ValueTask BeginWait(bool runContinuationAsynchronously, CancellationToken cancellationToken, out short token)
    {
        ValueTask wait = WaitAsync(runContinuationAsynchronously, cancellationToken);
        token = _core.Version;
        return wait;
    }

    /// <summary>An edge arrived (reactor thread). Wakes the waiter, or remembers it for the next wait.</summary>
    public void Signal()
    {
        while (true)
        {
            int state = Volatile.Read(ref _state);
            if (state is Ready or Closed)
            {
                return;
            }

            if (state == NotReady)
            {
                if (Interlocked.CompareExchange(ref _state, Ready, NotReady) == NotReady)
                {
                    return;
                }

                continue;
            }

            // Waiting: the waiter consumes this edge.
            if (Interlocked.CompareExchange(ref _state, NotReady, Waiting) == Waiting)
            {
                _core.SetResult(true);
                return;
            }
        }
    }

    /// <summary>A waiter has just parked (the slot is Waiting): an edge from now on reaches it.</summary>
    protected virtual void OnParked()
    {
    }

    /// <summary>Closes the slot for good: the waiter and every later wait fail with <paramref name="reason"/> (default: ObjectDisposedException).</summary>
    public void CloseWaits(Exception? reason = null)
    {
        _closeReason ??= reason;
        if (Interlocked.Exchange(ref _state, Closed) == Waiting)
        {
            _core.SetException(CloseException());
        }
    }

    private void Cancel(CancellationToken token)
    {
        if (Interlocked.CompareExchange(ref _state, NotReady, Waiting) == Waiting)
        {
            _core.SetException(new OperationCanceledException(token));
        }
    }

    /// <summary>Why the waits were closed (null: disposal, or not closed).</summary>
    protected Exception? CloseReason => _closeReason;

    private Exception CloseException() => _closeReason ?? new ObjectDisposedException("fd", "The fd was closed while waiting for it to become ready.");

    void IValueTaskSource.GetResult(short token)
    {
        if (_cancellation is { } cancellation)
        {
            cancellation.Value.Dispose();
            cancellation.Value = default;
        }
        _core.GetResult(token);
    }

    ValueTaskSourceStatus IValueTaskSource.GetStatus(short token) => _core.GetStatus(token);

    void IValueTaskSource.OnCompleted(Action<object?> continuation, object? state, short token, ValueTaskSourceOnCompletedFlags flags) =>
        _core.OnCompleted(continuation, state, token, flags);
}
