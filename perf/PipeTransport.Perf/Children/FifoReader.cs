using System.Diagnostics;
using System.Runtime.CompilerServices;
using PipeTransport.Perf.Data;
using PipeTransport.Perf.Harness;

namespace PipeTransport.Perf.Children;

/// <summary>
/// Child mode <c>reader PATH CHUNK PIPESIZE</c>: the separate process that drains and hashes the
/// copy's destination FIFO. Prints "ready" just before opening and, at EOF,
/// "done END_TIMESTAMP HASH BYTES" (CLOCK_MONOTONIC in Stopwatch ticks).
/// </summary>
internal static class FifoReader
{
    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // a short-lived process: no time for tiering
    public static int Run(string path, int chunk, int pipeSize)
    {
        var buffer = GC.AllocateUninitializedArray<byte>(chunk, pinned: true);
        var hash = new StreamHash();
        hash.Append(buffer.AsSpan(0, 0));
        Console.Out.WriteLine("ready");
        Console.Out.Flush();

        long end;
        using (var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite, bufferSize: 0))
        {
            PipeBuffer.Resize(stream.SafeFileHandle, pipeSize);
            int n;
            while ((n = stream.Read(buffer)) > 0)
            {
                hash.Append(buffer.AsSpan(0, n));
            }

            end = Stopwatch.GetTimestamp();
        }

        Console.Out.WriteLine($"done {end} {hash.Finish():x16} {hash.Length}");
        return 0;
    }
}
