using System.Buffers;
using System.IO.Pipelines;

namespace PipeTransport.Connection;

/// <summary>
/// The application's view of Output: forwards to the pipe's writer and records completion, so
/// disposal knows whether what is still buffered is meant to be sent (completed: drain it) or
/// abandoned (not completed: discard it). It also holds the pipe and the send loop's task, so a
/// connection carries one reference for all of Output.
/// </summary>
internal sealed class OutputWriter : PipeWriter
{
    private readonly PipeWriter _inner;
    private readonly int _poolSendThreshold;
    private volatile bool _completed;

    /// <param name="pipe">Output's pipe.</param>
    /// <param name="poolSendThreshold">Flushes of at least this many bytes resume the send loop on the pool (see <see cref="SendScheduler"/>); int.MaxValue: never.</param>
    public OutputWriter(Pipe pipe, int poolSendThreshold)
    {
        Pipe = pipe;
        _inner = pipe.Writer;
        _poolSendThreshold = poolSendThreshold;
    }

    /// <summary>Output's pipe (its reader belongs to the send loop).</summary>
    public Pipe Pipe { get; }

    /// <summary>The send loop, once started.</summary>
    public Task? SendTask { get; set; }

    public bool IsCompleted => _completed;

    public override bool CanGetUnflushedBytes => _inner.CanGetUnflushedBytes;

    public override long UnflushedBytes => _inner.UnflushedBytes;

    public override void Advance(int bytes) => _inner.Advance(bytes);

    public override Memory<byte> GetMemory(int sizeHint = 0) => _inner.GetMemory(sizeHint);

    public override Span<byte> GetSpan(int sizeHint = 0) => _inner.GetSpan(sizeHint);

    public override ValueTask<FlushResult> FlushAsync(CancellationToken cancellationToken = default) =>
        _inner.UnflushedBytes >= _poolSendThreshold ? SendScheduler.FlushToPool(_inner, cancellationToken) : _inner.FlushAsync(cancellationToken);

    public override ValueTask<FlushResult> WriteAsync(ReadOnlyMemory<byte> source, CancellationToken cancellationToken = default)
    {
        if (_inner.UnflushedBytes + source.Length < _poolSendThreshold)
        {
            return _inner.WriteAsync(source, cancellationToken);
        }

        _inner.Write(source.Span);
        return SendScheduler.FlushToPool(_inner, cancellationToken);
    }

    public override void CancelPendingFlush() => _inner.CancelPendingFlush();

    public override void Complete(Exception? exception = null)
    {
        _completed = true;
        _inner.Complete(exception);
    }
}
