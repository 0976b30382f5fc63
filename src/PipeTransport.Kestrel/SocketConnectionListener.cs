using System.Buffers;
using System.Net;
using Microsoft.AspNetCore.Connections;
using Microsoft.Extensions.Logging;

namespace PipeTransport.Kestrel;

/// <summary>
/// A listening TCP or Unix socket (bound here, or inherited through a <see cref="FileHandleEndPoint"/>)
/// whose accepted connections Kestrel serves. Kestrel ends its accept loop on the first exception;
/// <see cref="FdListener.AcceptAsync"/> waits out the fd limit and skips clients that went away, so
/// what it throws is fatal for the listener. With hand-off, connections closed after this server was
/// handed off linger (see <see cref="PipeConnectionContext.DisposeAsync"/>).
/// </summary>
internal sealed class SocketConnectionListener(FdListener listener, MemoryPool<byte> memoryPool, bool dispatch, ILogger logger, HandOffCoordinator? handOff = null) : IConnectionListener
{
    private int _unbound;

    public EndPoint EndPoint { get; } = listener.LocalEndPoint;

    public async ValueTask<ConnectionContext?> AcceptAsync(CancellationToken cancellationToken = default)
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

        return connection is null ? null : new PipeConnectionContext(connection, memoryPool, dispatch, logger, lingerOnClose: handOff);
    }

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
