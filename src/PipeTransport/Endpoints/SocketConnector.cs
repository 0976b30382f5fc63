using System.Net;
using PipeTransport.Connection;
using PipeTransport.Diagnostics;
using PipeTransport.Interop;

namespace PipeTransport.Endpoints;

/// <summary>Non-blocking connect: <c>EINPROGRESS</c>, wait writable, read <c>SO_ERROR</c>.</summary>
internal static class SocketConnector
{
    public static async ValueTask<FdConnection> ConnectAsync(EndPoint endPoint, FdConnectionOptions options, CancellationToken cancellationToken)
    {
        byte[] address = SocketAddresses.ToNative(endPoint, out int family);
        string name = SocketAddresses.Describe(endPoint);
        cancellationToken.ThrowIfCancellationRequested();
        int fd = Sys.Socket(family);
        if (fd < 0)
        {
            throw PipeTransportException.FromResult(fd, "socket", name);
        }

        var handle = new SafeFdHandle(fd);
        FdChannel? channel = null;
        try
        {
            if (family != Libc.AF_UNIX && options.NoDelay)
            {
                Sys.SetSockOptInt(fd, Libc.IPPROTO_TCP, Libc.TCP_NODELAY, 1);
            }

            int r = Sys.Connect(fd, address);
            if (r < 0 && r != -Libc.EINPROGRESS)
            {
                throw PipeTransportException.FromResult(r, "connect", name);
            }

            // Registered only once the connect has started: epoll reports EPOLLHUP for a stream socket
            // that is not connected yet (TCP_CLOSE), the registration would keep it as a hang-up seen,
            // and the receive loop of the idle connection would then rent a buffer to look for an EOF.
            channel = FdChannel.AdoptNew(handle, FdKind.Socket, options.Reactors.Next(), name);
            while (r < 0)
            {
                await channel.Registration!.Write.WaitAsync(true, cancellationToken).ConfigureAwait(false);
                if (Sys.GetSockOptInt(fd, Libc.SOL_SOCKET, Libc.SO_ERROR, out int error) < 0 || error != 0)
                {
                    throw PipeTransportException.FromResult(-error, "connect", name);
                }

                // The slot starts out ready, so the first wake may come before the handshake ends.
                r = Sys.GetName(fd, peer: true, new byte[128]);
                if (r < 0 && r != -Libc.ENOTCONN)
                {
                    throw PipeTransportException.FromResult(r, "connect", name);
                }
            }

            return new FdConnection(channel, channel, options, transport: family == Libc.AF_UNIX ? ConnectionTransport.Unix : ConnectionTransport.Tcp);
        }
        catch
        {
            if (channel is not null)
            {
                channel.Close();
            }
            else
            {
                handle.Dispose();
            }

            throw;
        }
    }
}
