using System.Buffers;
using System.Net;
using System.Net.Sockets;

namespace PipeTransport.Perf.Children;

/// <summary>Idle connections held by .NET <see cref="Socket"/>s with a pending zero-byte <c>ReceiveAsync</c>.</summary>
internal sealed class SocketIdleServer : IIdleServer
{
    private readonly Socket _listener = new(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
    private readonly List<(Socket Socket, Task Hold)> _held = [];

    public SocketIdleServer()
    {
        _listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        _listener.Listen(512);
    }

    public EndPoint LocalEndPoint => _listener.LocalEndPoint!;

    public async Task AcceptAndHoldAsync(int count)
    {
        for (int i = 0; i < count; i++)
        {
            var socket = await _listener.AcceptAsync();
            socket.NoDelay = true;
            _held.Add((socket, HoldAsync(socket)));
        }
    }

    public async Task ReleaseAllAsync()
    {
        foreach (var (socket, hold) in _held)
        {
            await hold;
            socket.Dispose();
        }

        _held.Clear();
    }

    private static async Task HoldAsync(Socket socket)
    {
        while (true)
        {
            // Wait for data without a buffer (Kestrel's WaitForDataBeforeAllocatingBuffer); only then
            // rent one, so an idle connection holds none.
            await socket.ReceiveAsync(Memory<byte>.Empty, SocketFlags.None);
            byte[] buffer = ArrayPool<byte>.Shared.Rent(4096);
            int n = await socket.ReceiveAsync(buffer, SocketFlags.None);
            ArrayPool<byte>.Shared.Return(buffer);
            if (n == 0)
            {
                return;
            }
        }
    }

    public ValueTask DisposeAsync()
    {
        _listener.Dispose();
        return ValueTask.CompletedTask;
    }
}
