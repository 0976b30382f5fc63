namespace PipeTransport.Perf.Children;

/// <summary>Checks RLIMIT_NOFILE (from /proc/self/limits) before a run that needs many fds.</summary>
internal static class OpenFileLimit
{
    public static void Require(int fds)
    {
        string? line = File.ReadLines("/proc/self/limits").FirstOrDefault(l => l.StartsWith("Max open files", StringComparison.Ordinal));
        string[] words = line?.Split(' ', StringSplitOptions.RemoveEmptyEntries) ?? [];
        if (words.Length >= 5 && long.TryParse(words[3], out long soft) && soft < fds)
        {
            throw new InvalidOperationException(
                $"RLIMIT_NOFILE soft limit is {soft}, this run needs {fds} fds: raise it (ulimit -n {words[4]}) or use --connections");
        }
    }
}
