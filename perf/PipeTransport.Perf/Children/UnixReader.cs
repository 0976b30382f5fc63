using System.Diagnostics;
using System.Net.Sockets;
using System.Runtime.CompilerServices;
using PipeTransport.Perf.Data;

namespace PipeTransport.Perf.Children;

/// <summary>
/// Child mode <c>unix-reader PATH CHUNK</c>: the separate process that drains and hashes a Unix
/// socket connection. Listens on PATH and prints "ready"; accepts one connection, reads it to EOF in
/// blocking CHUNK-byte receives, and prints "done END_TIMESTAMP HASH BYTES".
/// </summary>
internal static class UnixReader
{
    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // a short-lived process: no time for tiering
    public static int Run(string path, int chunk)
    {
        var buffer = GC.AllocateUninitializedArray<byte>(chunk, pinned: true);
        var hash = new StreamHash();
        hash.Append(buffer.AsSpan(0, 0));
        File.Delete(path);
        using var listener = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        listener.Bind(new UnixDomainSocketEndPoint(path));
        listener.Listen(1);
        Console.Out.WriteLine("ready");
        Console.Out.Flush();

        long end;
        using (var socket = listener.Accept())
        {
            int n;
            while ((n = socket.Receive(buffer)) > 0)
            {
                hash.Append(buffer.AsSpan(0, n));
            }

            end = Stopwatch.GetTimestamp();
        }

        File.Delete(path);
        Console.Out.WriteLine($"done {end} {hash.Finish():x16} {hash.Length}");
        return 0;
    }
}
