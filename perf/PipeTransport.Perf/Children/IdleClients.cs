using System.Net;
using System.Net.Sockets;

namespace PipeTransport.Perf.Children;

/// <summary>
/// Child mode <c>idle-clients PORT COUNT</c>: opens COUNT TCP connections to the loopback port (64 in
/// flight, well under the listen backlog), prints "connected", and holds them until stdin closes.
/// </summary>
internal static class IdleClients
{
    public static async Task<int> RunAsync(int port, int count)
    {
        OpenFileLimit.Require(count + 256);
        var endPoint = new IPEndPoint(IPAddress.Loopback, port);
        var sockets = new Socket[count];
        await Parallel.ForAsync(0, count, new ParallelOptions { MaxDegreeOfParallelism = 64 }, async (i, ct) =>
        {
            var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
            await socket.ConnectAsync(endPoint, ct);
            sockets[i] = socket;
        });
        Console.Out.WriteLine("connected");
        Console.Out.Flush();
        await Console.In.ReadToEndAsync();
        GC.KeepAlive(sockets);
        return 0;
    }
}
