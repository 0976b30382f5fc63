using Microsoft.Win32.SafeHandles;

namespace PipeTransport.Bridge;

/// <summary>
/// stderr without <see cref="Console"/>: the stdio address hands fds 0 and 1 to an FdConnection, which
/// closes them, and Console would then fail initialising stdout the first time it wrote anything.
/// </summary>
internal static class StandardError
{
    public static TextWriter Writer { get; } = TextWriter.Synchronized(new StreamWriter(
        new FileStream(new SafeFileHandle(2, ownsHandle: false), FileAccess.Write, bufferSize: 0))
    {
        AutoFlush = true,
    });

    /// <summary>Whether stderr is a terminal (progress lines redraw in place with '\r' only then).</summary>
    public static bool IsTerminal => !Console.IsErrorRedirected;
}
