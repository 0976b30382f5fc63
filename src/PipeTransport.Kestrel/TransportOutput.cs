using System.IO.Pipelines;
using System.Runtime.CompilerServices;
using System.Threading.Tasks.Sources;

namespace PipeTransport.Kestrel;

/// <summary>
/// The connection's Output as Kestrel sees it: the core's writer, where a flush after the peer reset
/// the connection reports "completed" rather than throwing. Kestrel treats a throwing flush as a bug
/// (it logs an error); it learns of the reset from <c>ConnectionClosed</c> and Input instead, as with
/// its own Sockets transport. A flush that waits (backpressure: more than the pause threshold not yet
/// written, e.g. every 64 KiB response) is forwarded through a <see cref="PendingFlush"/> made at the
/// connection's first such wait and reused for every later one, so waiting allocates nothing and a
/// connection that never waits (small responses) does not carry it.
/// </summary>
internal sealed class TransportOutput(PipeWriter inner, bool dispatch) : PipeWriter
{
    private static readonly FlushResult s_completed = new(isCanceled: false, isCompleted: true);

    private PendingFlush? _pending;

    public override void Advance(int bytes) => inner.Advance(bytes);

    public override Memory<byte> GetMemory(int sizeHint = 0) => inner.GetMemory(sizeHint);

    public override Span<byte> GetSpan(int sizeHint = 0) => inner.GetSpan(sizeHint);

    public override bool CanGetUnflushedBytes => inner.CanGetUnflushedBytes;

    public override long UnflushedBytes => inner.UnflushedBytes;

    public override void CancelPendingFlush() => inner.CancelPendingFlush();

    public override void Complete(Exception? exception = null) => inner.Complete(exception);

    public override ValueTask CompleteAsync(Exception? exception = null) => inner.CompleteAsync(exception);

    public override ValueTask<FlushResult> FlushAsync(CancellationToken cancellationToken = default)
    {
        ValueTask<FlushResult> flush;
        try
        {
            flush = inner.FlushAsync(cancellationToken);
        }
        catch (FdConnectionResetException)
        {
            return new ValueTask<FlushResult>(s_completed);
        }

        return Forward(flush);
    }

    public override ValueTask<FlushResult> WriteAsync(ReadOnlyMemory<byte> source, CancellationToken cancellationToken = default)
    {
        ValueTask<FlushResult> write;
        try
        {
            write = inner.WriteAsync(source, cancellationToken);
        }
        catch (FdConnectionResetException)
        {
            return new ValueTask<FlushResult>(s_completed);
        }

        return Forward(write);
    }

    private ValueTask<FlushResult> Forward(ValueTask<FlushResult> flush)
    {
        if (flush.IsCompletedSuccessfully)
        {
            return flush;
        }

        if (flush.IsCompleted)
        {
            try
            {
                return new ValueTask<FlushResult>(flush.Result);
            }
            catch (FdConnectionResetException)
            {
                return new ValueTask<FlushResult>(s_completed);
            }
        }

        return (_pending ??= new PendingFlush(dispatch)).Forward(flush);
    }

    /// <summary>
    /// The reusable <see cref="IValueTaskSource{TResult}"/> of a waiting flush. The core's pipe completes
    /// the inner flush inline (its application scheduler is <see cref="PipeScheduler.Inline"/> under
    /// Kestrel); the hop to the thread pool is made here with this object as the work item.
    /// </summary>
    private sealed class PendingFlush : IValueTaskSource<FlushResult>, IThreadPoolWorkItem
    {
        private readonly bool _dispatch;
        private readonly Action _onInnerCompleted;
        private ManualResetValueTaskSourceCore<FlushResult> _core;
        private ConfiguredValueTaskAwaitable<FlushResult>.ConfiguredValueTaskAwaiter _innerFlush;

        public PendingFlush(bool dispatch)
        {
            _dispatch = dispatch;
            _onInnerCompleted = OnInnerCompleted;
        }

        /// <summary>One flush at a time (the PipeWriter contract), so the source can be reset here.</summary>
        public ValueTask<FlushResult> Forward(ValueTask<FlushResult> flush)
        {
            _core.Reset();
            _innerFlush = flush.ConfigureAwait(false).GetAwaiter();
            _innerFlush.UnsafeOnCompleted(_onInnerCompleted);
            return new ValueTask<FlushResult>(this, _core.Version);
        }

        private void OnInnerCompleted()
        {
            if (_dispatch)
            {
                ThreadPool.UnsafeQueueUserWorkItem(this, preferLocal: false);
            }
            else
            {
                Complete();
            }
        }

        void IThreadPoolWorkItem.Execute() => Complete();

        private void Complete()
        {
            var flush = _innerFlush;
            _innerFlush = default;
            FlushResult result;
            try
            {
                result = flush.GetResult();
            }
            catch (FdConnectionResetException)
            {
                result = s_completed;
            }
            catch (Exception e)
            {
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
}
