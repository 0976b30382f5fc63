using System.Buffers;
using System.IO.Pipelines;
using System.Runtime.ExceptionServices;
using System.Threading.Tasks.Sources;
using PipeTransport.Reactor;

namespace PipeTransport.Connection;

/// <summary>
/// The application's view of the receive direction (Input). The direction's state lives in the
/// connection (<see cref="FdConnection.ReceiveState"/>); this view adds what only the application's
/// side has: an idle read parked on the fd's readiness, and the gate that keeps the pipe's blocks
/// alive while the application may still see them.
/// <para>
/// Until bytes arrive a connection holds no pipe and no receive loop: a read that finds nothing
/// buffered is parked directly on the read readiness (this object is the read's
/// <see cref="IValueTaskSource{TResult}"/> and forwards to the slot, so the application's continuation
/// is the slot's). When the fd becomes readable, the read's <c>GetResult</c> starts the receive loop
/// (which reads what came into the pipe) and returns what the pipe then holds; from then on every call
/// forwards to the pipe's reader.
/// </para>
/// <para>
/// The gate: a read holds the pipe's blocks from the moment it starts until <c>AdvanceTo</c>. Disposal
/// returns the blocks to the pool only when no read holds them, otherwise the <c>AdvanceTo</c> that
/// ends the read does; reads after that return a completed, empty result.
/// </para>
/// </summary>
internal sealed class InputReader : PipeReader, IValueTaskSource<ReadResult>
{
    private const int Holding = 1;  // a read started and its AdvanceTo has not come yet
    private const int Released = 2; // the pipe's reader is (being) completed: calls no longer reach it

    private readonly FdConnection _connection;
    private PipeReader? _pipe; // set once the pipe serves the calls (the receive loop started or Input ended)
    private int _use;
    private bool _cancelNext;   // CancelPendingRead with no read pending: the next read returns cancelled
    private bool _cancelParked; // CancelPendingRead woke the parked read
    private bool _ownResult;    // the last result was made here (no pipe position to advance)

    public InputReader(FdConnection connection) => _connection = connection;

    private object Gate => _connection.Gate;

    /// <summary>For diagnostics.</summary>
    internal string DebugState => $"reader={(_pipe is null ? "idle" : "pipe")} use={_use} ownResult={_ownResult}";

    public override ValueTask<ReadResult> ReadAsync(CancellationToken cancellationToken = default)
    {
        if (!BeginRead())
        {
            return new ValueTask<ReadResult>(OwnCompleted());
        }

        try
        {
            return _pipe is { } pipe && !_ownResult ? ReadPipe(pipe, cancellationToken) : ReadWhileIdle(cancellationToken);
        }
        catch
        {
            EndRead();
            throw;
        }
    }

    public override bool TryRead(out ReadResult result)
    {
        if (!BeginRead())
        {
            result = OwnCompleted();
            return true;
        }

        bool read;
        try
        {
            read = TryReadCore(out result);
        }
        catch
        {
            EndRead();
            throw;
        }

        if (!read)
        {
            EndRead();
        }

        return read;
    }

    protected override ValueTask<ReadResult> ReadAtLeastAsyncCore(int minimumSize, CancellationToken cancellationToken)
    {
        if (!BeginRead())
        {
            return new ValueTask<ReadResult>(OwnCompleted());
        }

        try
        {
            // A read that waits for more than one read(2) brings: the loop reads ahead from now on.
            _connection.ReadAhead();
            return _pipe is { } pipe && !_ownResult ? pipe.ReadAtLeastAsync(minimumSize, cancellationToken) : ReadAtLeastWhileIdle(minimumSize, cancellationToken);
        }
        catch
        {
            EndRead();
            throw;
        }
    }

    public override void AdvanceTo(SequencePosition consumed)
    {
        if (!TakeOwnResult())
        {
            NoteUnexamined(consumed);
            PipeOrThrow().AdvanceTo(consumed);
        }

        EndRead();
    }

    public override void AdvanceTo(SequencePosition consumed, SequencePosition examined)
    {
        if (!TakeOwnResult())
        {
            NoteUnexamined(examined);
            PipeOrThrow().AdvanceTo(consumed, examined);
        }

        EndRead();
    }

    public override void CancelPendingRead()
    {
        if (_pipe is null)
        {
            lock (Gate)
            {
                if (_pipe is null)
                {
                    if (_connection.ReceiveState != FdConnection.Parked)
                    {
                        _cancelNext = true;
                        return;
                    }

                    _cancelParked = true;
                }
            }

            if (_cancelParked)
            {
                _connection.InputChannel.Read.Signal(); // wakes the parked read, which sees _cancelParked
                return;
            }
        }

        if ((Volatile.Read(ref _use) & Released) == 0)
        {
            _pipe!.CancelPendingRead();
        }
    }

    public override void Complete(Exception? exception = null)
    {
        PipeReader pipe;
        lock (Gate)
        {
            pipe = _pipe ??= _connection.InputPipe.Reader;
        }

        // The application is done: later calls see a completed Input, and the receive direction ends.
        Interlocked.Or(ref _use, Released);
        pipe.Complete(exception);
        _connection.EndReceive();
    }

    public override Task CopyToAsync(PipeWriter destination, CancellationToken cancellationToken = default)
    {
        if (!BeginRead())
        {
            return Task.CompletedTask;
        }

        // Nothing read yet and another connection's Output: the kernel may copy (see FdConnection.TrySpliceTo).
        Task? spliced = _pipe is null && !_ownResult ? _connection.TrySpliceTo(destination, cancellationToken) : null;
        if (spliced is not null)
        {
            lock (Gate)
            {
                _pipe ??= _connection.InputPipe.Reader; // after the copy Input reads from the pipe
            }

            return CopyWhileHolding(spliced);
        }

        return CopyWhileHolding(ActivateForStreaming().CopyToAsync(destination, cancellationToken));
    }

    public override Task CopyToAsync(Stream destination, CancellationToken cancellationToken = default) =>
        BeginRead() ? CopyWhileHolding(ActivateForStreaming().CopyToAsync(destination, cancellationToken)) : Task.CompletedTask;

    /// <summary>
    /// Disposal: completes the pipe's reader (its blocks go back to the pool) now if no read holds
    /// them, or at the <c>AdvanceTo</c> that ends the current read.
    /// </summary>
    internal void Release()
    {
        if ((Interlocked.Or(ref _use, Released) & Holding) == 0)
        {
            _connection.InputPipeIfMade?.Reader.Complete();
        }
    }

    /// <summary>True if the read may go to the pipe; false once the pipe is released (the read returns completed).</summary>
    private bool BeginRead() => (Interlocked.Or(ref _use, Holding) & Released) == 0;

    private void EndRead()
    {
        if (Interlocked.And(ref _use, ~Holding) == (Holding | Released))
        {
            _connection.InputPipeIfMade?.Reader.Complete(); // disposal waited for this read to end
        }
    }

    private async Task CopyWhileHolding(Task copy)
    {
        try
        {
            await copy.ConfigureAwait(false);
        }
        finally
        {
            EndRead();
        }
    }

    private ReadResult OwnCompleted()
    {
        _ownResult = true;
        return new ReadResult(default, isCanceled: false, isCompleted: true);
    }

    private bool TryReadCore(out ReadResult result)
    {
        if (_pipe is null || _ownResult)
        {
            lock (Gate)
            {
                ThrowIfOwnResultNotAdvanced();
                if (_cancelNext)
                {
                    _cancelNext = false;
                    _ownResult = true;
                    result = new ReadResult(default, isCanceled: true, isCompleted: false);
                    return true;
                }

                // Idle: the bytes may be in the kernel; a read that is parked has them first.
                if (_pipe is null && (_connection.ReceiveState == FdConnection.Parked || !HasInput()))
                {
                    result = default;
                    return false;
                }
            }

            Activate();
        }

        if (_pipe!.TryRead(out result))
        {
            return true;
        }

        // Reading on demand: nothing is read until someone asks, so ask, then look again.
        if (_connection.InputDemand is not { } demand)
        {
            return false;
        }

        demand.Demand();
        return _pipe.TryRead(out result);
    }

    private ValueTask<ReadResult> ReadWhileIdle(CancellationToken cancellationToken)
    {
        lock (Gate)
        {
            if (_connection.ReceiveState == FdConnection.Parked && _pipe is null)
            {
                throw new InvalidOperationException("Input is already being read: concurrent reads are not supported.");
            }

            ThrowIfOwnResultNotAdvanced();
            if (_cancelNext)
            {
                _cancelNext = false;
                _ownResult = true;
                return new ValueTask<ReadResult>(new ReadResult(default, isCanceled: true, isCompleted: false));
            }

            if (cancellationToken.IsCancellationRequested)
            {
                EndRead();
                return ValueTask.FromCanceled<ReadResult>(cancellationToken);
            }

            if (_pipe is null && TryPark(cancellationToken, out ValueTask<ReadResult> parked))
            {
                return parked;
            }
        }

        Activate();
        return ReadPipe(_pipe!, cancellationToken);
    }

    /// <summary>
    /// A read of the pipe; when it finds nothing and the loop reads on demand, the loop reads now, here
    /// (<see cref="ReceiveDemand"/>), and the read usually returns completed.
    /// </summary>
    private ValueTask<ReadResult> ReadPipe(PipeReader pipe, CancellationToken cancellationToken)
    {
        ValueTask<ReadResult> read = pipe.ReadAsync(cancellationToken);
        if (!read.IsCompleted)
        {
            _connection.InputDemand?.Demand();
        }

        return read;
    }

    /// <summary>
    /// Under the gate, idle: parks the read on the read readiness if nothing is buffered. An edge
    /// already recorded (a new fd starts "ready") is consumed and the fd asked again, so the wait is
    /// only for bytes that are not there yet. False: activate instead.
    /// </summary>
    private bool TryPark(CancellationToken cancellationToken, out ValueTask<ReadResult> parked)
    {
        parked = default;
        PipeScheduler scheduler = _connection.Options.ApplicationScheduler;
        bool inline = ReferenceEquals(scheduler, PipeScheduler.Inline);
        if (!inline && !ReferenceEquals(scheduler, PipeScheduler.ThreadPool))
        {
            return false; // the readiness slot can run the continuation inline or on the pool, not on a custom scheduler
        }

        if (HasInput() || !_connection.TryParkReceive())
        {
            return false;
        }

        // Each completed attempt consumed one recorded edge; the loop ends when the wait is pending,
        // or when there is something to read, a hang-up, cancellation or the end of Input.
        ReadinessSlot readiness = _connection.InputChannel.Read;
        while (true)
        {
            ValueTask wait = readiness.BeginWait(runContinuationAsynchronously: !inline, cancellationToken, out short token);
            if (!wait.IsCompleted)
            {
                parked = new ValueTask<ReadResult>(this, token);
                return true;
            }

            if (wait.IsCanceled)
            {
                _connection.UnparkReceive();
                EndRead();
                parked = ValueTask.FromCanceled<ReadResult>(cancellationToken);
                return true;
            }

            if (!wait.IsCompletedSuccessfully)
            {
                // Closed under the read (an abort or disposal raced it): the pipe reports what ended
                // Input. The failed wait is a faulted task, observed here so it is not reported unobserved.
                _ = wait.AsTask().Exception;
                _connection.UnparkReceive();
                return false;
            }

            if (HasInput())
            {
                _connection.UnparkReceive();
                return false; // bytes came
            }
        }
    }

    /// <summary>
    /// Whether a read should not park: the fd cannot be polled, something is buffered (or FIONREAD
    /// cannot tell), the peer hung up, or Input ended.
    /// </summary>
    private bool HasInput()
    {
        if (!_connection.CanParkInput)
        {
            return true;
        }

        FdChannel channel = _connection.InputChannel;
        return channel.HangUpSeen || channel.WaitsClosed || Interop.Sys.BytesAvailable(_connection.Options.Syscalls, channel.Fd) != 0;
    }

    /// <summary>The pipe and its receive loop take over (the loop runs here until it first waits).</summary>
    private void Activate()
    {
        lock (Gate)
        {
            _pipe ??= _connection.InputPipe.Reader;
        }

        _connection.EnsureReceiving();
    }

    private PipeReader ActivateForStreaming()
    {
        if (_pipe is null)
        {
            if (_connection.ReceiveState == FdConnection.Parked)
            {
                EndRead();
                throw new InvalidOperationException("Input is already being read: concurrent reads are not supported.");
            }

            Activate();
        }

        _connection.ReadAhead(); // the pipe's own copy loop reads it: the receive loop reads ahead
        return _pipe!;
    }

    /// <summary>Waits like a read while idle; once the pipe has the bytes, the pipe's own ReadAtLeast (and its backpressure rules) takes over.</summary>
    private async ValueTask<ReadResult> ReadAtLeastWhileIdle(int minimumSize, CancellationToken cancellationToken)
    {
        ReadResult first = await ReadWhileIdle(cancellationToken).ConfigureAwait(false);
        if (first.IsCanceled || first.IsCompleted)
        {
            return first;
        }

        if (!TakeOwnResult())
        {
            if (first.Buffer.Length >= minimumSize)
            {
                return first;
            }

            _pipe!.AdvanceTo(first.Buffer.Start);
        }

        _connection.ReadAhead(); // the loop started above: it reads ahead for this read
        return await _pipe!.ReadAtLeastAsync(minimumSize, cancellationToken).ConfigureAwait(false);
    }

    private ReadResult EndParkedRead(short token)
    {
        ReadinessSlot readiness = _connection.InputChannel.Read;
        Exception? failure = null;
        try
        {
            ((IValueTaskSource)readiness).GetResult(token);
        }
        catch (Exception e)
        {
            failure = e;
        }

        lock (Gate)
        {
            bool cancelled = _cancelParked;
            _cancelParked = false;
            if (cancelled || (failure is OperationCanceledException && _connection.ReceiveState == FdConnection.Parked))
            {
                _connection.UnparkReceive(); // nothing was read: the next read parks again (or finds the bytes)
                if (cancelled)
                {
                    _ownResult = true;
                    return new ReadResult(default, isCanceled: true, isCompleted: false);
                }

                EndRead();
                ExceptionDispatchInfo.Throw(failure!);
            }

            if ((_use & Released) != 0)
            {
                return OwnCompleted(); // the application completed Input under its own read
            }

            _pipe ??= _connection.InputPipe.Reader;
        }

        // Readable, or Input ended (its pipe then holds the end): the receive loop starts here, reads
        // what came into the pipe and waits. The pipe reports an abort's reason as any read would.
        _connection.EnsureReceiving();
        try
        {
            if (_pipe.TryRead(out ReadResult result))
            {
                return result;
            }
        }
        catch
        {
            EndRead();
            throw;
        }

        // Woken with nothing to read after all: only a read of the fd outside the pipe (InputFd) can
        // take the bytes between the edge and here. Like a pipe after an empty flush, the result is
        // empty and not completed; the next read waits on the pipe.
        _ownResult = true;
        return new ReadResult(default, isCanceled: false, isCompleted: false);
    }

    private void ThrowIfOwnResultNotAdvanced()
    {
        if (_ownResult)
        {
            EndRead();
            throw new InvalidOperationException("AdvanceTo must be called after the previous read before reading again.");
        }
    }

    private bool TakeOwnResult()
    {
        if (!_ownResult)
        {
            return false;
        }

        _ownResult = false;
        return true;
    }

    /// <summary>
    /// Tells Output whether the application leaves bytes it has not looked at yet: its next read returns
    /// at once, so what it flushes now is likely the first of several answers (pipelined requests).
    /// Read before the pipe may recycle the segments; a stale answer costs one write or one hop, never a byte.
    /// </summary>
    private void NoteUnexamined(SequencePosition examined)
    {
        if (_connection.OutputIfStarted is { } output)
        {
            output.InputQueued = HasBytesAfter(examined);
        }
    }

    /// <summary>A pipe's positions name its segments (<see cref="ReadOnlySequenceSegment{T}"/>), whose Memory is what was flushed into them.</summary>
    private static bool HasBytesAfter(SequencePosition position)
    {
        if (position.GetObject() is not ReadOnlySequenceSegment<byte> segment)
        {
            return false;
        }

        if (position.GetInteger() < segment.Memory.Length)
        {
            return true;
        }

        for (ReadOnlySequenceSegment<byte>? next = segment.Next; next is not null; next = next.Next)
        {
            if (!next.Memory.IsEmpty)
            {
                return true; // the writer may have linked an empty segment it has not filled yet
            }
        }

        return false;
    }

    private PipeReader PipeOrThrow() =>
        _pipe ?? throw new InvalidOperationException("AdvanceTo was called without a read to advance.");

    ReadResult IValueTaskSource<ReadResult>.GetResult(short token) => EndParkedRead(token);

    ValueTaskSourceStatus IValueTaskSource<ReadResult>.GetStatus(short token) =>
        ((IValueTaskSource)_connection.InputChannel.Read).GetStatus(token);

    void IValueTaskSource<ReadResult>.OnCompleted(Action<object?> continuation, object? state, short token, ValueTaskSourceOnCompletedFlags flags) =>
        ((IValueTaskSource)_connection.InputChannel.Read).OnCompleted(continuation, state, token, flags);
}
