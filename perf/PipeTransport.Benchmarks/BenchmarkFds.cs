using System.Buffers;
using PipeTransport.Interop;

namespace PipeTransport.Benchmarks;

/// <summary>Anonymous pipes for the benchmarks, through the library's own (internal) interop layer.</summary>
internal static class BenchmarkFds
{
    /// <summary>A non-blocking anonymous pipe.</summary>
    public static PipePair CreatePipe()
    {
        int r = Sys.Pipe(out int readFd, out int writeFd);
        if (r < 0)
        {
            throw PipeTransportException.FromResult(r, "pipe2", null);
        }

        return new PipePair(new SafeFdHandle(readFd), new SafeFdHandle(writeFd));
    }

    /// <summary>Two connections joined by two anonymous pipes, one per direction.</summary>
    public static (FdConnection, FdConnection) CreatePipeConnections()
    {
        var ab = CreatePipe();
        var ba = CreatePipe();
        return (FdConnection.FromFds(ba.ReadEnd, ab.WriteEnd), FdConnection.FromFds(ab.ReadEnd, ba.WriteEnd));
    }

    /// <summary>The two ends of one pipe and allocation-free one-byte I/O on them.</summary>
    internal sealed class PipePair(SafeFdHandle readEnd, SafeFdHandle writeEnd) : IDisposable
    {
        private readonly byte[] _scratch = new byte[16];

        public SafeFdHandle ReadEnd { get; } = readEnd;

        public SafeFdHandle WriteEnd { get; } = writeEnd;

        /// <summary>Writes <paramref name="bytes"/> (the pipe never fills: every byte is read back).</summary>
        public void Write(byte[] bytes)
        {
            nint r = Sys.Write(LinuxSyscalls.Instance, WriteEnd.Fd, new ReadOnlySequence<byte>(bytes));
            if (r != bytes.Length)
            {
                throw PipeTransportException.FromResult(r < 0 ? r : -Libc.EIO, "write", null);
            }
        }

        /// <summary>A <see cref="RawFd.ReadAsync"/> callback: false on EAGAIN (wait), true once a byte was read.</summary>
        public bool TryReadOne(int fd)
        {
            nint r = Sys.Read(LinuxSyscalls.Instance, fd, _scratch.AsMemory(0, 1));
            return r != -Libc.EAGAIN;
        }

        public void Dispose()
        {
            ReadEnd.Dispose();
            WriteEnd.Dispose();
        }
    }
}
