using System.Buffers;
using System.Net;
using Microsoft.AspNetCore.Connections;
using Microsoft.Extensions.Logging;
using Mono.Unix.Native;

namespace PipeTransport.Kestrel;

/// <summary>
/// A listening TCP or Unix socket (bound here, or inherited through a <see cref="FileHandleEndPoint"/>)
/// whose accepted connections Kestrel serves.
/// </summary>
internal sealed class SocketConnectionListener(FdListener listener, MemoryPool<byte> memoryPool, bool dispatch, ILogger logger) : IConnectionListener
{
    private static readonly TimeSpan s_maxBackoff = TimeSpan.FromSeconds(1);
    private int _unbound;

    public EndPoint EndPoint { get; } = listener.LocalEndPoint;

    public async ValueTask<ConnectionContext?> AcceptAsync(CancellationToken cancellationToken = default)
    {
        var backoff = TimeSpan.Zero;
        while (true)
        {
            FdConnection? connection;
            try
            {
                connection = await listener.AcceptAsync(cancellationToken).ConfigureAwait(false);
            }
            catch (ObjectDisposedException) when (Volatile.Read(ref _unbound) != 0)
            {
                return null;
            }
            catch (PipeTransportException e) when (Volatile.Read(ref _unbound) == 0 && IsTransient(e.Errno))
            {
                // Kestrel ends its accept loop on the first exception, so a full fd table must not
                // become a dead server: wait (like Go's accept loop, 5 ms doubling to 1 s) and try again.
                // A connection that was reset while in the backlog is simply skipped.
                PipeTransportLog.AcceptFailed(logger, EndPoint.ToString() ?? "", e);
                if (e.Errno is Errno.EMFILE or Errno.ENFILE or Errno.ENOBUFS or Errno.ENOMEM)
                {
                    backoff = backoff == TimeSpan.Zero ? TimeSpan.FromMilliseconds(5) : TimeSpan.FromTicks(Math.Min(backoff.Ticks * 2, s_maxBackoff.Ticks));
                    await Task.Delay(backoff, cancellationToken).ConfigureAwait(false);
                }
                continue;
            }
            return connection is null ? null : new PipeConnectionContext(connection, memoryPool, dispatch, logger);
        }
    }

    private static bool IsTransient(Errno errno) =>
        errno is Errno.ECONNABORTED or Errno.ECONNRESET or Errno.EPROTO or Errno.EPERM
            or Errno.EMFILE or Errno.ENFILE or Errno.ENOBUFS or Errno.ENOMEM;

    /// <summary>
    /// Stops accepting: disposing the listener closes the listening fd (new connections are refused),
    /// wakes a pending accept with null and removes the Unix socket file; accepted connections live on.
    /// </summary>
    public async ValueTask UnbindAsync(CancellationToken cancellationToken = default)
    {
        Volatile.Write(ref _unbound, 1);
        await listener.DisposeAsync().ConfigureAwait(false);
    }

    public ValueTask DisposeAsync() => UnbindAsync();
}
