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
    private volatile bool _completed;

    public OutputWriter(Pipe pipe)
    {
        Pipe = pipe;
        _inner = pipe.Writer;
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
