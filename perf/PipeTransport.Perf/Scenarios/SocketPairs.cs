using System.Net;
using System.Net.Sockets;
using PipeTransport.Perf.Harness;

namespace PipeTransport.Perf.Scenarios;

/// <summary>Connected client/server pairs for the socket scenarios, built with each variant's own API.</summary>
internal static class SocketPairs
{
    public static EndPoint NewEndPoint(SocketKind kind, RunContext context)
    {
        if (kind == SocketKind.Tcp)
        {
            return new IPEndPoint(IPAddress.Loopback, 0);
        }

        string path = SocketPath(context);
        File.Delete(path);
        return new UnixDomainSocketEndPoint(path);
    }

    private static string SocketPath(RunContext context) => Path.Combine(context.WorkDirectory, "perf.sock");

    /// <summary>Client and server <see cref="FdConnection"/>s: <see cref="FdListener"/> and <see cref="FdConnection.ConnectAsync"/>.</summary>
    public static async Task<(FdConnection Client, FdConnection Server)> ConnectFdAsync(SocketKind kind, RunContext context, FdConnectionOptions options)
    {
        await using var listener = FdListener.Bind(NewEndPoint(kind, context), new FdListenerOptions { ConnectionOptions = options });
        var accept = listener.AcceptAsync(context.CancellationToken).AsTask();
        var client = await FdConnection.ConnectAsync(listener.LocalEndPoint, options, context.CancellationToken);
        var server = await accept ?? throw new InvalidOperationException("listener closed before accepting");
        return (client, server);
    }

    /// <summary>Client and server .NET <see cref="Socket"/>s, TCP_NODELAY on as FdConnection does.</summary>
    public static async Task<(Socket Client, Socket Server)> ConnectSocketsAsync(SocketKind kind, RunContext context)
    {
        var endPoint = NewEndPoint(kind, context);
        var protocol = kind == SocketKind.Tcp ? ProtocolType.Tcp : ProtocolType.Unspecified;
        using var listener = new Socket(endPoint.AddressFamily, SocketType.Stream, protocol);
        listener.Bind(endPoint);
        listener.Listen(512);
        var client = new Socket(endPoint.AddressFamily, SocketType.Stream, protocol);
        var accept = listener.AcceptAsync(context.CancellationToken).AsTask();
        await client.ConnectAsync(listener.LocalEndPoint!, context.CancellationToken);
        var server = await accept;
        if (kind == SocketKind.Tcp)
        {
            client.NoDelay = true;
            server.NoDelay = true;
        }
        else
        {
            File.Delete(SocketPath(context));
        }

        return (client, server);
    }
}
