using System.Runtime.InteropServices;

namespace PipeTransport.Perf.Harness;

/// <summary>Sets a FIFO's kernel buffer size (F_SETPIPE_SZ) through the library's interop layer.</summary>
internal static class PipeBuffer
{
    public static void Resize(SafeHandle fifo, int size)
    {
        if (size > 0)
        {
            throw new NotSupportedException("F_SETPIPE_SZ helper not wired yet");
        }
    }
}
