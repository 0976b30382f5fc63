using System.IO.Pipelines;

namespace PipeTransport.Connection;

/// <summary>
/// The application's view of Output: forwards to the pipe's writer and records completion, so
/// disposal knows whether what is still buffered is meant to be sent (completed: drain it) or
/// abandoned (not completed: discard it).
/// </summary>
internal sealed class OutputWriter : PipeWriter
{
    private readonly PipeWriter _inner;
    private volatile bool _completed;

    public OutputWriter(PipeWriter inner) => _inner = inner;

    public bool IsCompleted => _completed;

    public override bool CanGetUnflushedBytes => _inner.CanGetUnflushedBytes;

    public override long UnflushedBytes => _inner.UnflushedBytes;

    public override void Advance(int bytes) => _inner.Advance(bytes);

    public override Memory<byte> GetMemory(int sizeHint = 0) => _inner.GetMemory(sizeHint);

    public override Span<byte> GetSpan(int sizeHint = 0) => _inner.GetSpan(sizeHint);

    public override ValueTask<FlushResult> FlushAsync(CancellationToken cancellationToken = default) => _inner.FlushAsync(cancellationToken);

    public override ValueTask<FlushResult> WriteAsync(ReadOnlyMemory<byte> source, CancellationToken cancellationToken = default) =>
        _inner.WriteAsync(source, cancellationToken);

    public override void CancelPendingFlush() => _inner.CancelPendingFlush();

    public override void Complete(Exception? exception = null)
    {
        _completed = true;
        _inner.Complete(exception);
    }
}
