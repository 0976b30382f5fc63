using System.Diagnostics;
using System.Runtime.CompilerServices;
using PipeTransport.Perf.Data;
using PipeTransport.Perf.Harness;

namespace PipeTransport.Perf.Children;

/// <summary>
/// Child mode <c>writer PATH SIZE SEED CHUNK PIPESIZE</c>: the separate process that feeds a FIFO.
/// Plain blocking writes of the pattern, so the writer costs one syscall per chunk and never waits on
/// a runtime. Prints "ready" just before opening, and after closing "done START_TIMESTAMP BYTES",
/// where START_TIMESTAMP is CLOCK_MONOTONIC (Stopwatch ticks, shared by all processes) taken
/// after the open returned, i.e. once a reader was there: runs are timed from the first byte.
/// </summary>
internal static class FifoWriter
{
    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // a short-lived process: no time for tiering
    public static int Run(string path, long size, int seed, int chunk, int pipeSize)
    {
        var pattern = new DataPattern(seed);
        pattern.Slice(0, 1);
        Console.Out.WriteLine("ready");
        Console.Out.Flush();

        long start;
        // bufferSize 0: each Write is one write(2) of the whole chunk.
        using (var stream = new FileStream(path, FileMode.Open, FileAccess.Write, FileShare.ReadWrite, bufferSize: 0))
        {
            PipeBuffer.Resize(stream.SafeFileHandle, pipeSize);
            start = Stopwatch.GetTimestamp();
            for (long offset = 0; offset < size;)
            {
                var slice = pattern.Slice(offset, (int)Math.Min(chunk, size - offset));
                stream.Write(slice.Span);
                offset += slice.Length;
            }
        }

        Console.Out.WriteLine($"done {start} {size}");
        return 0;
    }
}
