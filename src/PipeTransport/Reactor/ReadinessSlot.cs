using System.Threading.Tasks.Sources;

namespace PipeTransport.Reactor;

/// <summary>
/// One direction's readiness of a registered fd: a three-state machine (not ready, ready, someone
/// waiting) that never loses an edge. Edge-triggered epoll reports each transition once; if it
/// arrives between the caller's <c>EAGAIN</c> and its wait, the slot is left <c>Ready</c> and the wait
/// returns at once. One waiter at a time; the wait is a reusable <see cref="IValueTaskSource"/>, so
/// waiting allocates nothing.
/// </summary>
internal sealed class ReadinessSlot : IValueTaskSource
{
    private const int NotReady = 0;
    private const int Ready = 1;
    private const int Waiting = 2;
    private const int Closed = 3;

    // Starts Ready: nothing is known about a new fd, so the first attempt tries the syscall.
    private int _state = Ready;
    private ManualResetValueTaskSourceCore<bool> _core;
    private CancellationTokenRegistration _cancellation;
    private Exception? _closeReason;

    public bool IsClosed => Volatile.Read(ref _state) == Closed;

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

            if (cancellationToken.CanBeCanceled)
            {
                _cancellation = cancellationToken.UnsafeRegister(
                    static (slot, token) => ((ReadinessSlot)slot!).Cancel(token), this);
            }

            return new ValueTask(this, _core.Version);
        }
    }

    /// <summary>
    /// Arms the slot with a callback instead of an await, so a parked reader needs no async state
    /// machine. Returns false, with nothing armed, if an edge is already there (it is consumed) or the
    /// slot is closed; otherwise <paramref name="callback"/>(<paramref name="state"/>) runs once, inline
    /// on the thread that signals or closes the slot, unless <see cref="TryDisarm"/> wins first.
    /// The callback must call <see cref="EndCallbackWait"/>.
    /// </summary>
    public bool WaitWithCallback(Action<object?> callback, object state)
    {
        ValueTask wait = WaitAsync(runContinuationAsynchronously: false);
        if (wait.IsCompleted)
        {
            return false;
        }

        _core.OnCompleted(callback, state, _core.Version, ValueTaskSourceOnCompletedFlags.None);
        return true;
    }

    /// <summary>Ends a wait armed by <see cref="WaitWithCallback"/>, inside its callback: true for an edge, false if the slot was closed.</summary>
    public bool EndCallbackWait()
    {
        try
        {
            ((IValueTaskSource)this).GetResult(_core.Version);
            return true;
        }
        catch (Exception)
        {
            return false;
        }
    }

    /// <summary>
    /// Takes back a wait armed by <see cref="WaitWithCallback"/>: true if its callback will now never
    /// run (the slot is left <c>Ready</c>, so the next wait tries the fd once instead of trusting that
    /// no edge was missed); false if an edge or a close already took it and the callback runs or ran.
    /// </summary>
    public bool TryDisarm() => Interlocked.CompareExchange(ref _state, Ready, Waiting) == Waiting;

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

    /// <summary>Closes the slot for good: the waiter and every later wait fail with <paramref name="reason"/> (default: ObjectDisposedException).</summary>
    public void Close(Exception? reason = null)
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

    private Exception CloseException() => _closeReason ?? new ObjectDisposedException("fd", "The fd was closed while waiting for it to become ready.");

    void IValueTaskSource.GetResult(short token)
    {
        _cancellation.Dispose();
        _cancellation = default;
        _core.GetResult(token);
    }

    ValueTaskSourceStatus IValueTaskSource.GetStatus(short token) => _core.GetStatus(token);

    void IValueTaskSource.OnCompleted(Action<object?> continuation, object? state, short token, ValueTaskSourceOnCompletedFlags flags) =>
        _core.OnCompleted(continuation, state, token, flags);
}
