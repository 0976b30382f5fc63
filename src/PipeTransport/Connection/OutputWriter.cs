using System.Buffers;
using System.IO.Pipelines;
using System.Runtime.CompilerServices;
using System.Threading.Tasks.Sources;
using PipeTransport.Diagnostics;

namespace PipeTransport.Connection;

/// <summary>
/// The application's view of the send direction (Output). It forwards to the pipe's writer and adds
/// what only the application's side has:
/// <list type="bullet">
/// <item>whether the application completed Output, so disposal knows whether what is buffered is
/// meant to be sent (drain it) or abandoned (drop it);</item>
/// <item>the gate that keeps the pipe's blocks alive while the application may still see them: from
/// <c>GetMemory</c> to <c>Advance</c>, and for the length of a write or flush call;</item>
/// <item>where the send loop runs after a flush: inline inside the application's <c>FlushAsync</c>
/// (the lowest latency for a message), or, for a flush of at least
/// <see cref="FdConnectionOptions.PoolSendThreshold"/> bytes, on a pool thread, so the application
/// goes on producing while another core writes; and for a flush that closely follows the last write
/// with no input in between, or that leaves input the application has not examined yet, on a pool
/// thread behind the application's current work item, so the flushes of one turn leave in one write (<see cref="FdConnectionOptions.CoalesceFlushes"/>).</item>
/// </list>
/// It also holds the pipe, the send loop's task and the send direction's error until something reports
/// it, so a connection carries one reference for all of Output.
/// </summary>
internal sealed class OutputWriter : PipeWriter, IThreadPoolWorkItem
{
    private const int Busy = 1;     // inside a call, or between GetMemory and Advance
    private const int Released = 2; // the pipe's writer is (being) completed: calls no longer reach it

    private readonly PipeWriter _inner;
    private readonly int _poolSendThreshold;
    private readonly PipeScheduler _applicationScheduler;
    private int _use;
    private volatile bool _completed;
    private bool _bulkFlush;
    private Action? _poolContinuation;
    private Exception? _unreported;
    private PendingFlush? _pendingFlush;

    /// <param name="pipe">Output's pipe; its writer side resumes inline (this writer schedules the application).</param>
    /// <param name="poolSendThreshold">Flushes of at least this many bytes run the send loop on the pool; int.MaxValue: never.</param>
    /// <param name="applicationScheduler">Where a flush that waited resumes the application.</param>
    /// <param name="owner">The connection whose send direction this is.</param>
    public OutputWriter(Pipe pipe, int poolSendThreshold, PipeScheduler applicationScheduler, FdConnection owner)
    {
        Owner = owner;
        Pipe = pipe;
        _inner = pipe.Writer;
        _poolSendThreshold = poolSendThreshold;
        _applicationScheduler = applicationScheduler;
    }

    /// <summary>The connection whose send direction this is.</summary>
    public FdConnection Owner { get; }

    /// <summary>Bytes the application flushed into the pipe (written by its calls).</summary>
    public long FlushedBytes => Volatile.Read(ref _flushedBytes);

    /// <summary>Bytes the send loop wrote to the fd (written by the send loop): equal to <see cref="FlushedBytes"/> when the pipe is empty.</summary>
    public long SentBytes;

    /// <summary>
    /// Nothing the application wrote waits to be sent: a splice may write the fd now without
    /// overtaking it (the send loop waits on an empty pipe until the next flush).
    /// </summary>
    public bool IdleForSplice => !_completed && (Volatile.Read(ref _use) & Released) == 0 && _inner.UnflushedBytes == 0
        && FlushedBytes == Volatile.Read(ref SentBytes);

    private long _flushedBytes;
    private Exception? _spliceFailure;

    /// <summary>
    /// A splice into this direction's fd (<see cref="FdConnection.TrySpliceTo"/>) failed on the fd: the send
    /// loop, the direction's owner, ends the direction with <paramref name="error"/> as if its own write had.
    /// </summary>
    public void FailFromSplice(Exception error)
    {
        Volatile.Write(ref _spliceFailure, error);
        Pipe.Reader.CancelPendingRead();
    }

    /// <summary>For the send loop: the error a splice handed over, if any.</summary>
    public Exception? TakeSpliceFailure() => Interlocked.Exchange(ref _spliceFailure, null);

    /// <summary>Output's pipe (its reader belongs to the send loop).</summary>
    public Pipe Pipe { get; }

    /// <summary>The send loop, once started.</summary>
    public Task? SendTask { get; set; }

    /// <summary>The send direction has ended (written under the connection's lock; <see cref="FdConnection.WritesClosed"/>).</summary>
    public bool SendEnded { get; set; }

    /// <summary>What ended the send direction, once <see cref="SendEnded"/>: null when it ended without an error.</summary>
    public Exception? SendEnd { get; set; }

    /// <summary>The application completed Output: what it wrote is to be sent, then a half-close.</summary>
    public bool IsCompleted => _completed;

    /// <summary>
    /// Input received bytes since the last write (set by the receive loop, cleared by the send loop):
    /// the next flush answers them and is written inline, unless <see cref="InputQueued"/>. Racy by design: a stale value costs one
    /// inline write or one hop, never a byte.
    /// </summary>
    public bool InputSinceWrite { get; set; }

    /// <summary>
    /// The application's last <c>AdvanceTo</c> left input it has not examined (set by Input): its next
    /// read returns at once, so a flush now is gathered with the answers to that input.
    /// </summary>
    public bool InputQueued { get; set; }

    /// <summary>When the last write returned (<see cref="System.Diagnostics.Stopwatch"/> ticks).</summary>
    public long LastWrite { get; set; }

    /// <summary>A flush now would be gathered with the ones after it rather than written inline.</summary>
    public bool WouldGather => InputQueued || (!InputSinceWrite && System.Diagnostics.Stopwatch.GetTimestamp() - LastWrite < Reactor.SchedulingConstants.GatherWindowTicks);

    /// <summary>
    /// The send direction ended with an error the application must hear of (a write or the half-close
    /// failed, or a reset dropped bytes it flushed). Set by the send loop before it completes the pipe's
    /// reader with it, and taken by the first flush or write of Output that throws it; if none does,
    /// disposal throws it (<see cref="FdConnection.DisposeAsync"/>).
    /// </summary>
    public void SetUnreported(Exception error) => Volatile.Write(ref _unreported, error);

    /// <summary>Takes the error no Output call has reported yet (null if there is none, or someone took it).</summary>
    public Exception? TakeUnreported() => Volatile.Read(ref _unreported) is null ? null : Interlocked.Exchange(ref _unreported, null);

    /// <summary>The application's thread is inside a flush that asked for the pool (read by the send loop when that flush resumed it).</summary>
    public bool InBulkFlush => _bulkFlush;

    public override bool CanGetUnflushedBytes => true;

    public override long UnflushedBytes => (Volatile.Read(ref _use) & Released) == 0 ? _inner.UnflushedBytes : 0;

    public override Memory<byte> GetMemory(int sizeHint = 0)
    {
        Enter();
        return _inner.GetMemory(sizeHint); // stays busy until Advance: the application writes into the block
    }

    public override Span<byte> GetSpan(int sizeHint = 0)
    {
        Enter();
        return _inner.GetSpan(sizeHint);
    }

    public override void Advance(int bytes)
    {
        try
        {
            _inner.Advance(bytes);
        }
        finally
        {
            Exit();
        }
    }

    public override ValueTask<FlushResult> FlushAsync(CancellationToken cancellationToken = default)
    {
        if (!TryEnter())
        {
            return new ValueTask<FlushResult>(new FlushResult(isCanceled: false, isCompleted: true));
        }

        try
        {
            long unflushed = _inner.UnflushedBytes;
            Volatile.Write(ref _flushedBytes, _flushedBytes + unflushed);
            return Reporting(Counted(unflushed >= _poolSendThreshold ? BulkFlush(cancellationToken) : _inner.FlushAsync(cancellationToken)));
        }
        catch (Exception e)
        {
            Reported(e);
            throw;
        }
        finally
        {
            Exit();
        }
    }

    public override ValueTask<FlushResult> WriteAsync(ReadOnlyMemory<byte> source, CancellationToken cancellationToken = default)
    {
        if (!TryEnter())
        {
            return new ValueTask<FlushResult>(new FlushResult(isCanceled: false, isCompleted: true));
        }

        try
        {
            long unflushed = _inner.UnflushedBytes + source.Length;
            Volatile.Write(ref _flushedBytes, _flushedBytes + unflushed);
            if (unflushed < _poolSendThreshold)
            {
                return Reporting(Counted(_inner.WriteAsync(source, cancellationToken)));
            }

            _inner.Write(source.Span);
            return Reporting(Counted(BulkFlush(cancellationToken)));
        }
        catch (Exception e)
        {
            Reported(e);
            throw;
        }
        finally
        {
            Exit();
        }
    }

    public override void CancelPendingFlush()
    {
        if ((Volatile.Read(ref _use) & Released) == 0)
        {
            _inner.CancelPendingFlush();
        }
    }

    public override void Complete(Exception? exception = null)
    {
        _completed = true;
        Interlocked.Or(ref _use, Released);
        _inner.Complete(exception);
    }

    /// <summary>
    /// Disposal, after the send loop ended: completes the pipe's writer (its blocks go back to the
    /// pool) now if the application is not inside a call or holding a block, or when it leaves.
    /// </summary>
    internal void Release()
    {
        if ((Interlocked.Or(ref _use, Released) & Busy) == 0)
        {
            _inner.Complete();
        }
    }

    /// <summary>Resumes the send loop on a pool thread (no allocation: this writer is the work item).</summary>
    /// <param name="preferLocal">Queue on the current pool thread's own queue: it runs when the
    /// application's work item returns (or on a thread that steals it), after the flushes of that turn.</param>
    internal PoolResume ResumeOnThreadPool(bool preferLocal) => new(this, preferLocal);

    void IThreadPoolWorkItem.Execute()
    {
        Action continuation = _poolContinuation!;
        _poolContinuation = null;
        continuation();
    }

    /// <summary>A flush that does not complete at once waits for the peer: Output holds its pause threshold (metrics).</summary>
    private static ValueTask<FlushResult> Counted(ValueTask<FlushResult> flush)
    {
        if (!flush.IsCompleted)
        {
            TransportMetrics.OutputPaused();
        }

        return flush;
    }

    private ValueTask<FlushResult> BulkFlush(CancellationToken cancellationToken)
    {
        _bulkFlush = true;
        try
        {
            return _inner.FlushAsync(cancellationToken);
        }
        finally
        {
            _bulkFlush = false;
        }
    }

    /// <summary>
    /// A flush that did not complete at once may end with the send direction's error (the pipe throws
    /// it from the await): such a flush is awaited through <see cref="PendingFlush"/>, which notes that
    /// the application was told.
    /// </summary>
    private ValueTask<FlushResult> Reporting(ValueTask<FlushResult> flush) =>
        flush.IsCompletedSuccessfully ? flush : (_pendingFlush ??= new PendingFlush(this)).Forward(flush);

    /// <summary>An Output call threw <paramref name="error"/>: if it is the send direction's error, the application has it.</summary>
    private void Reported(Exception error) => Interlocked.CompareExchange(ref _unreported, null, error);

    private void Enter()
    {
        if (!TryEnter())
        {
            throw _completed
                ? new InvalidOperationException("Output was completed: writing is not allowed any more.")
                : new ObjectDisposedException(nameof(FdConnection), "The connection was disposed: writing is not allowed any more.");
        }
    }

    private bool TryEnter()
    {
        if ((Interlocked.Or(ref _use, Busy) & Released) == 0)
        {
            return true;
        }

        Exit();
        return false;
    }

    private void Exit()
    {
        if (Interlocked.And(ref _use, ~Busy) == (Busy | Released) && !_completed)
        {
            _inner.Complete(); // disposal waited for the application to leave
        }
    }

    /// <summary>
    /// The reusable <see cref="IValueTaskSource{TResult}"/> of a flush that waits (backpressure), made at
    /// the first such wait. The pipe completes the inner flush inline (its writer side is
    /// <see cref="PipeScheduler.Inline"/>); this takes its result at once, noting a send error it
    /// throws, and resumes the application on its scheduler (the pool: a queued continuation, no
    /// allocation). One flush at a time (the PipeWriter contract), so it is reset per flush.
    /// </summary>
    private sealed class PendingFlush : IValueTaskSource<FlushResult>
    {
        private static readonly Action<object?> s_complete = static state => ((PendingFlush)state!).Complete();

        private readonly OutputWriter _writer;
        private readonly Action _onInnerCompleted;
        private ManualResetValueTaskSourceCore<FlushResult> _core;
        private ConfiguredValueTaskAwaitable<FlushResult>.ConfiguredValueTaskAwaiter _inner;

        public PendingFlush(OutputWriter writer)
        {
            _writer = writer;
            _onInnerCompleted = OnInnerCompleted;
            _core.RunContinuationsAsynchronously = !ReferenceEquals(writer._applicationScheduler, PipeScheduler.Inline);
        }

        public ValueTask<FlushResult> Forward(ValueTask<FlushResult> flush)
        {
            _core.Reset();
            _inner = flush.ConfigureAwait(false).GetAwaiter();
            _inner.UnsafeOnCompleted(_onInnerCompleted);
            return new ValueTask<FlushResult>(this, _core.Version);
        }

        private void OnInnerCompleted()
        {
            PipeScheduler scheduler = _writer._applicationScheduler;
            if (ReferenceEquals(scheduler, PipeScheduler.ThreadPool) || ReferenceEquals(scheduler, PipeScheduler.Inline))
            {
                Complete();
            }
            else
            {
                scheduler.Schedule(s_complete, this);
            }
        }

        private void Complete()
        {
            ConfiguredValueTaskAwaitable<FlushResult>.ConfiguredValueTaskAwaiter inner = _inner;
            _inner = default;
            FlushResult result;
            try
            {
                result = inner.GetResult();
            }
            catch (Exception e)
            {
                _writer.Reported(e);
                _core.SetException(e);
                return;
            }

            _core.SetResult(result);
        }

        public FlushResult GetResult(short token) => _core.GetResult(token);

        public ValueTaskSourceStatus GetStatus(short token) => _core.GetStatus(token);

        public void OnCompleted(Action<object?> continuation, object? state, short token, ValueTaskSourceOnCompletedFlags flags) =>
            _core.OnCompleted(continuation, state, token, flags);
    }

    /// <summary>The awaitable of <see cref="ResumeOnThreadPool"/>.</summary>
    internal readonly struct PoolResume(OutputWriter writer, bool preferLocal) : ICriticalNotifyCompletion
    {
        public bool IsCompleted => false;

        public PoolResume GetAwaiter() => this;

        public void GetResult()
        {
        }

        public void OnCompleted(Action continuation) => UnsafeOnCompleted(continuation);

        public void UnsafeOnCompleted(Action continuation)
        {
            writer._poolContinuation = continuation;
            ThreadPool.UnsafeQueueUserWorkItem(writer, preferLocal);
        }
    }
}
