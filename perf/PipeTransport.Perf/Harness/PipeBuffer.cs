using System.Runtime.InteropServices;

namespace PipeTransport.Perf.Harness;

/// <summary>Applies <c>--pipe-size</c> to a FIFO end (0 keeps the kernel default).</summary>
internal static class PipeBuffer
{
    public static void Resize(SafeHandle fifo, int size)
    {
        if (size > 0 && PipeCapacity.Set(fifo, size) < size)
        {
            throw new InvalidOperationException($"the kernel set a pipe capacity below {size}");
        }
    }
}
