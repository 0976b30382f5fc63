using System.Globalization;

namespace PipeTransport.Perf.Soak;

/// <summary>One second of the server process: what /proc says and the managed heap it printed last.</summary>
/// <param name="Seconds">Since the soak started.</param>
/// <param name="Phase">The cycle's phase when the sample was taken (<see cref="SoakPhase"/>).</param>
/// <param name="Rss">Resident set, bytes (VmRSS).</param>
/// <param name="Fds">Open fds (entries of /proc/PID/fd).</param>
/// <param name="Threads">Threads (entries of /proc/PID/task).</param>
/// <param name="GcHeap">GC.GetTotalMemory(false): managed bytes in use, garbage since the last GC included.</param>
/// <param name="HeapAtLastGc">GCMemoryInfo.HeapSizeBytes of the last collection.</param>
internal sealed record ProcessSample(double Seconds, string Phase, long Rss, int Fds, int Threads, long GcHeap, long HeapAtLastGc);

/// <summary>Reads RSS, fd count and thread count of another process from /proc.</summary>
internal static class ProcessSampler
{
    /// <summary>Null once the process is gone.</summary>
    public static (long Rss, int Fds, int Threads)? Read(int pid)
    {
        try
        {
            long rss = 0;
            foreach (string line in File.ReadLines($"/proc/{pid}/status"))
            {
                if (line.StartsWith("VmRSS:", StringComparison.Ordinal))
                {
                    rss = long.Parse(line.AsSpan(6).Trim().TrimEnd("kB").Trim(), CultureInfo.InvariantCulture) * 1024;
                }
            }

            int fds = Directory.EnumerateFileSystemEntries($"/proc/{pid}/fd").Count();
            int threads = Directory.EnumerateDirectories($"/proc/{pid}/task").Count();
            return rss == 0 ? null : (rss, fds, threads);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }

    /// <summary>Open fds of the process right now, or -1 once it is gone.</summary>
    public static int Fds(int pid)
    {
        try
        {
            return Directory.EnumerateFileSystemEntries($"/proc/{pid}/fd").Count();
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return -1;
        }
    }
}
