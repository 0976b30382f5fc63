namespace PipeTransport.Bridge;

/// <summary>
/// stderr without <see cref="Console"/>: the stdio address hands fds 0 and 1 to an FdConnection, which
/// closes them, and Console would then fail initialising stdout the first time it wrote anything
/// (and, initialised earlier, it would hold a dup of stdout that keeps its reader from seeing EOF).
/// Each line is one write(2) to fd 2, so lines land at the end even when stderr is a file shared with
/// other writers (a FileStream would pwrite at its own offset over theirs), and writing one opens and
/// loads nothing, so errors are reported at the fd limit too.
/// </summary>
internal static class StandardError
{
    public static TextWriter Writer { get; } = TextWriter.Synchronized(new StreamWriter(new Fd2Stream())
    {
        AutoFlush = true,
    });

    /// <summary>Whether stderr is a terminal (progress lines redraw in place with '\r' only then).</summary>
    public static bool IsTerminal => !Console.IsErrorRedirected;

    /// <summary>write(2) to fd 2; a failed write (a closed pipe) is dropped, as Console drops it.</summary>
    private sealed class Fd2Stream : Stream
    {
        public override bool CanRead => false;

        public override bool CanSeek => false;

        public override bool CanWrite => true;

        public override long Length => throw new NotSupportedException();

        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

        public override void Write(ReadOnlySpan<byte> buffer) => PipeTransport.Interop.Sys.WriteAll(2, buffer);

        public override void Write(byte[] buffer, int offset, int count) => Write(buffer.AsSpan(offset, count));

        public override void Flush()
        {
        }

        public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

        public override void SetLength(long value) => throw new NotSupportedException();
    }
}
