using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using PipeTransport.Connection;

namespace PipeTransport;

/// <summary>
/// Raw access to an fd with the reactor's waiting, after Go's <c>syscall.RawConn</c>: the function
/// you pass is called first; only when it returns false (it saw <c>EAGAIN</c>) does the call wait
/// until the fd is ready and call it again. Closing (disposing) and cancellation wake a waiter with
/// <see cref="ObjectDisposedException"/> / <see cref="OperationCanceledException"/>.
/// </summary>
/// <remarks>
/// One read wait and one write wait may be pending at a time. On an <see cref="FdConnection"/>,
/// <see cref="FdConnection.InputFd"/> is for callers that have not started reading
/// <see cref="FdConnection.Input"/> (the receive loop starts at the first read and from then on owns
/// the read readiness), and <see cref="FdConnection.OutputFd"/> for moments when the application is
/// not writing to <see cref="FdConnection.Output"/>; <see cref="Control"/> is always safe.
/// </remarks>
public sealed class RawFd : IDisposable
{
    private readonly FdChannel _channel;
    private readonly bool _ownsChannel;
    private int _disposed;

    internal RawFd(FdChannel channel, bool ownsChannel)
    {
        _channel = channel;
        _ownsChannel = ownsChannel;
    }

    /// <summary>
    /// Sets <c>O_NONBLOCK</c> on <paramref name="fd"/> and registers it with <see cref="ReactorGroup.Default"/>.
    /// The caller keeps ownership of the handle; the fd stays open at least until this object is disposed.
    /// Regular files (which epoll refuses) are accepted and are always ready.
    /// </summary>
    /// <param name="fd">The fd.</param>
    /// <returns>The raw access object.</returns>
    public static RawFd Create(SafeHandle fd) => new(FdChannel.Adopt(fd, ReactorGroup.Default.Next(), disposeHandle: false), ownsChannel: true);

    /// <summary>
    /// Whether epoll has reported hang-up or an error on the fd (true for non-pollable fds). A FIFO
    /// reads 0 both before its first writer and after its last; only the second raises EPOLLHUP.
    /// </summary>
    internal bool HangUpSeen => _channel.Registration?.HangUpSeen ?? true;

    /// <summary>What the fd is (from <c>fstat</c> when it was adopted).</summary>
    internal Connection.FdKind Kind => _channel.Kind;

    /// <summary>The fd was closed (a splice must not write a number that may be reused).</summary>
    internal bool IsClosed => _channel.IsClosed;

    /// <summary>Whether the fd goes through epoll (false for regular files and other non-pollable fds).</summary>
    public bool IsPollable => _channel.Pollable;

    /// <summary>Runs <paramref name="action"/> with the fd number, which is guaranteed open for the duration.</summary>
    /// <param name="action">Receives the fd.</param>
    public void Control(Action<int> action)
    {
        ArgumentNullException.ThrowIfNull(action);
        Invoke(static (fd, a) => { a(fd); return true; }, action);
    }

    /// <summary>Calls <paramref name="read"/> until it returns true, waiting for readability in between.</summary>
    /// <param name="read">Receives the fd; returns false when the fd had nothing (<c>EAGAIN</c>).</param>
    /// <param name="cancellationToken">Cancels a wait.</param>
    /// <returns>A task that completes once <paramref name="read"/> returned true.</returns>
    public ValueTask ReadAsync(Func<int, bool> read, CancellationToken cancellationToken = default) =>
        CallUntilDoneAsync(read, write: false, continueOnReactor: false, cancellationToken);

    /// <summary>Calls <paramref name="write"/> until it returns true, waiting for writability in between.</summary>
    /// <param name="write">Receives the fd; returns false when the fd could take nothing (<c>EAGAIN</c>).</param>
    /// <param name="cancellationToken">Cancels a wait.</param>
    /// <returns>A task that completes once <paramref name="write"/> returned true.</returns>
    public ValueTask WriteAsync(Func<int, bool> write, CancellationToken cancellationToken = default) =>
        CallUntilDoneAsync(write, write: true, continueOnReactor: false, cancellationToken);

    /// <summary>
    /// <see cref="ReadAsync(Func{int, bool}, CancellationToken)"/>/<see cref="WriteAsync(Func{int, bool}, CancellationToken)"/>
    /// for the library's own copy loops (splice, the bridge's writer): after a wait, <paramref name="call"/> and whatever
    /// follows the await run on the reactor thread that saw the fd become ready (no hand-off to the thread pool). The
    /// caller must do only short, non-blocking work there.
    /// </summary>
    internal ValueTask CallOnReactorAsync(Func<int, bool> call, bool write, CancellationToken cancellationToken) =>
        CallUntilDoneAsync(call, write, continueOnReactor: true, cancellationToken);

    /// <summary>
    /// For a standalone <see cref="RawFd"/>: unregisters the fd, wakes waiters with
    /// <see cref="ObjectDisposedException"/>, restores its blocking mode and releases it (the caller's
    /// handle still owns it). For <see cref="FdConnection.InputFd"/>/<see cref="FdConnection.OutputFd"/>
    /// it does nothing: the connection owns the fd.
    /// </summary>
    public void Dispose()
    {
        if (_ownsChannel && Interlocked.Exchange(ref _disposed, 1) == 0)
        {
            _channel.Close();
        }
    }

    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    private async ValueTask CallUntilDoneAsync(Func<int, bool> call, bool write, bool continueOnReactor, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(call);
        while (true)
        {
            cancellationToken.ThrowIfCancellationRequested();
            if (Invoke(static (fd, f) => f(fd), call))
            {
                return;
            }

            Reactor.Registration registration = _channel.Registration ?? throw NotPollable();
            await (write ? registration.Write : registration.Read).WaitAsync(!continueOnReactor, cancellationToken).ConfigureAwait(false);
        }
    }

    private bool Invoke<T>(Func<int, T, bool> call, T state)
    {
        ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0 || _channel.IsClosed, this);
        bool added = false;
        try
        {
            _channel.Handle.DangerousAddRef(ref added);
            ObjectDisposedException.ThrowIf(_channel.IsClosed, this);
            return call(_channel.Fd, state);
        }
        finally
        {
            if (added)
            {
                _channel.Handle.DangerousRelease();
            }
        }
    }

    private InvalidOperationException NotPollable() =>
        new($"{_channel.Name} is not pollable (epoll refuses it: a regular file or a device); it is always ready, so the function must not report EAGAIN.");
}
