using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Runtime.CompilerServices;
using PipeTransport.Perf.Data;

namespace PipeTransport.Perf.Children;

/// <summary>
/// Child mode <c>tcp-writer SIZE SEED CHUNK</c>: the separate process that feeds a TCP connection.
/// Listens on 127.0.0.1 (any port) and prints "ready PORT"; accepts one connection, sends the
/// pattern in blocking CHUNK-byte sends, shuts its side down, and prints "done START_TIMESTAMP BYTES"
/// where START_TIMESTAMP is CLOCK_MONOTONIC (Stopwatch ticks) taken once the connection was accepted.
/// </summary>
internal static class TcpWriter
{
    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // a short-lived process: no time for tiering
    public static int Run(long size, int seed, int chunk)
    {
        var pattern = new DataPattern(seed);
        pattern.Slice(0, 1);
        using var listener = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        listener.Listen(1);
        Console.Out.WriteLine($"ready {((IPEndPoint)listener.LocalEndPoint!).Port}");
        Console.Out.Flush();

        long start;
        using (var socket = listener.Accept())
        {
            start = Stopwatch.GetTimestamp();
            for (long offset = 0; offset < size;)
            {
                var slice = pattern.Slice(offset, (int)Math.Min(chunk, size - offset));
                offset += socket.Send(slice.Span);
            }

            socket.Shutdown(SocketShutdown.Send);
        }

        Console.Out.WriteLine($"done {start} {size}");
        return 0;
    }
}
