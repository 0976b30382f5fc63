namespace PipeTransport.Bridge;

/// <summary>
/// stderr without <see cref="Console"/>: the stdio address hands fds 0 and 1 to an FdConnection, which
/// closes them, and Console would then fail initialising stdout the first time it wrote anything
/// (and, initialised earlier, it would hold a dup of stdout that keeps its reader from seeing EOF).
/// Mono's UnixStream calls write(2), so lines land at the end even when stderr is a file shared
/// with other writers (a FileStream would pwrite at its own offset over theirs).
/// </summary>
internal static class StandardError
{
    public static TextWriter Writer { get; } = TextWriter.Synchronized(new StreamWriter(
        new Mono.Unix.UnixStream(2, ownsHandle: false))
    {
        AutoFlush = true,
    });

    /// <summary>Whether stderr is a terminal (progress lines redraw in place with '\r' only then).</summary>
    public static bool IsTerminal => !Console.IsErrorRedirected;
}
