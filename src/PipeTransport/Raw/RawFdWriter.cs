using System.Buffers;
using PipeTransport.Interop;

namespace PipeTransport;

/// <summary>
/// Writes a buffer sequence straight to a <see cref="RawFd"/> with <c>write</c>/<c>writev</c>, waiting
/// for writability on the reactor when the fd is full. With the <see cref="System.IO.Pipelines.ReadResult.Buffer"/>
/// of one connection's <see cref="FdConnection.Input"/> and another connection's
/// <see cref="FdConnection.OutputFd"/>, bytes go from one fd to the other through a single user-space
/// buffer (the Input pipe's), with no second copy into an Output pipe.
/// </summary>
/// <remarks>
/// The rules of <see cref="RawFd"/> apply: on an <see cref="FdConnection.OutputFd"/>, write this way
/// only while the application writes nothing to that connection's <see cref="FdConnection.Output"/>
/// (completing Output afterwards, with nothing in it, still half-closes the fd).
/// </remarks>
public sealed class RawFdWriter
{
    private readonly RawFd _fd;
    private readonly string? _name;
    private readonly Func<int, bool> _writeSome;
    private readonly bool _continueOnReactor;
    private ReadOnlySequence<byte> _remaining;
    private nint _error;
    private long _bytesWritten;

    /// <summary>Creates a writer for <paramref name="fd"/>.</summary>
    /// <param name="fd">The fd to write (a pipe, a FIFO, a socket, a tty, ...).</param>
    /// <param name="name">Names the fd in error messages.</param>
    /// <param name="continueOnReactor">
    /// When a write had to wait, complete it where the reactor saw the fd writable (its thread, or with
    /// <see cref="ReactorPolling.HandOffToThreadPool"/> the pool thread polling for it), so the caller's
    /// code after the <c>await</c> runs there without another hand-off. Only for a caller
    /// whose continuation is short and never blocks (a copy loop); the default completes on the thread pool.
    /// </param>
    public RawFdWriter(RawFd fd, string? name = null, bool continueOnReactor = false)
    {
        ArgumentNullException.ThrowIfNull(fd);
        _fd = fd;
        _name = name;
        _continueOnReactor = continueOnReactor;
        _writeSome = WriteSome;
    }

    /// <summary>Bytes written so far (safe to read from any thread).</summary>
    public long BytesWritten => Volatile.Read(ref _bytesWritten);

    /// <summary>
    /// Writes all of <paramref name="buffer"/>; completes synchronously when the fd takes it at once.
    /// The memory must stay valid (not be advanced past) until the returned task completes.
    /// One write at a time.
    /// </summary>
    /// <param name="buffer">The bytes.</param>
    /// <param name="cancellationToken">Cancels a wait for writability (part of the buffer may have been written).</param>
    /// <returns>A task that completes when every byte was written.</returns>
    /// <exception cref="PipeTransportException">write failed (<see cref="FdConnectionResetException"/> for <c>EPIPE</c>/<c>ECONNRESET</c>).</exception>
    public ValueTask WriteAsync(ReadOnlySequence<byte> buffer, CancellationToken cancellationToken = default)
    {
        if (buffer.IsEmpty)
        {
            return default;
        }

        _remaining = buffer;
        _error = 0;
        ValueTask wait = _continueOnReactor
            ? _fd.CallOnReactorAsync(_writeSome, write: true, cancellationToken)
            : _fd.WriteAsync(_writeSome, cancellationToken);
        if (wait.IsCompletedSuccessfully)
        {
            wait.GetAwaiter().GetResult();
            return _error == 0 ? default : ValueTask.FromException(Error());
        }

        return WaitAsync(wait);
    }

    private async ValueTask WaitAsync(ValueTask wait)
    {
        try
        {
            await wait.ConfigureAwait(false);
        }
        finally
        {
            _remaining = default;
        }

        if (_error != 0)
        {
            throw Error();
        }
    }

    private PipeTransportException Error() => PipeTransportException.FromResult(_error, "write", _name);

    // RawFd callback: writes until everything is out (true), the fd is full (false: wait) or an error (true, recorded).
    private bool WriteSome(int fd)
    {
        while (!_remaining.IsEmpty)
        {
            nint n = Sys.Write(LinuxSyscalls.Instance, fd, _remaining);
            if (n > 0)
            {
                _remaining = _remaining.Slice(n);
                Volatile.Write(ref _bytesWritten, _bytesWritten + n);
            }
            else if (n == -Libc.EAGAIN)
            {
                return false;
            }
            else
            {
                _error = n == 0 ? -Libc.EIO : n;
                _remaining = default;
                return true;
            }
        }

        return true;
    }
}
