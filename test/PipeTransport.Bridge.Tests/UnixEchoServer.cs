using System.Net.Sockets;

namespace PipeTransport.Bridge.Tests;

/// <summary>A Unix socket that echoes every connection back until the peer's EOF: ADDRESS2 of the --fork tests.</summary>
internal sealed class UnixEchoServer : IAsyncDisposable
{
    private readonly Socket _listener = new(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
    private readonly CancellationTokenSource _stop;
    private readonly Task _echoing;

    public UnixEchoServer(string path, int backlog, CancellationToken cancellationToken)
    {
        Path = path;
        _listener.Bind(new UnixDomainSocketEndPoint(path));
        _listener.Listen(backlog);
        _stop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        _echoing = EchoAsync(_listener, _stop.Token);
    }

    public string Path { get; }

    /// <summary>Stops accepting and waits for every connection's echo to end; throws what one of them threw.</summary>
    public async Task StopAsync()
    {
        _stop.Cancel();
        await _echoing;
    }

    /// <summary>For a test that failed before <see cref="StopAsync"/>: stops without reporting the echoes' errors.</summary>
    public async ValueTask DisposeAsync()
    {
        _stop.Cancel();
        await _echoing.ContinueWith(t => t.Exception, TaskScheduler.Default);
        _listener.Dispose();
        _stop.Dispose();
    }

    private static async Task EchoAsync(Socket listener, CancellationToken cancellationToken)
    {
        var connections = new List<Task>();
        try
        {
            while (true)
            {
                Socket accepted = await listener.AcceptAsync(cancellationToken);
                connections.Add(Task.Run(async () =>
                {
                    using (accepted)
                    {
                        byte[] buffer = new byte[64 * 1024];
                        int n;
                        while ((n = await accepted.ReceiveAsync(buffer, cancellationToken)) > 0)
                            await accepted.SendAsync(buffer.AsMemory(0, n), cancellationToken);
                        accepted.Shutdown(SocketShutdown.Send);
                    }
                }, cancellationToken));
            }
        }
        catch (OperationCanceledException)
        {
        }
        await Task.WhenAll(connections);
    }
}
