using System.IO.Pipelines;

namespace PipeTransport.Connection;

/// <summary>
/// The application's view of Input. It forwards to the pipe's reader and tells the connection two
/// things the pipe cannot: the first read (the receive loop starts then, so until then the read
/// readiness belongs to <see cref="FdConnection.InputFd"/>), and completion (so a receive loop
/// waiting for readiness stops at once instead of at the next byte).
/// </summary>
internal sealed class InputReader : PipeReader
{
    private readonly PipeReader _inner;
    private readonly FdConnection _connection;

    public InputReader(PipeReader inner, FdConnection connection)
    {
        _inner = inner;
        _connection = connection;
    }

    public override ValueTask<ReadResult> ReadAsync(CancellationToken cancellationToken = default)
    {
        _connection.EnsureReceiving();
        return _inner.ReadAsync(cancellationToken);
    }

    public override bool TryRead(out ReadResult result)
    {
        _connection.EnsureReceiving();
        return _inner.TryRead(out result);
    }

    protected override ValueTask<ReadResult> ReadAtLeastAsyncCore(int minimumSize, CancellationToken cancellationToken)
    {
        _connection.EnsureReceiving();
        return _inner.ReadAtLeastAsync(minimumSize, cancellationToken);
    }

    public override void AdvanceTo(SequencePosition consumed) => _inner.AdvanceTo(consumed);

    public override void AdvanceTo(SequencePosition consumed, SequencePosition examined) => _inner.AdvanceTo(consumed, examined);

    public override void CancelPendingRead() => _inner.CancelPendingRead();

    public override void Complete(Exception? exception = null)
    {
        _inner.Complete(exception);
        _connection.OnInputCompleted();
    }

    public override Task CopyToAsync(PipeWriter destination, CancellationToken cancellationToken = default)
    {
        _connection.EnsureReceiving();
        return _inner.CopyToAsync(destination, cancellationToken);
    }

    public override Task CopyToAsync(Stream destination, CancellationToken cancellationToken = default)
    {
        _connection.EnsureReceiving();
        return _inner.CopyToAsync(destination, cancellationToken);
    }
}
