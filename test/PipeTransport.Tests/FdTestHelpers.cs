using System.Buffers;
using System.Diagnostics;
using System.IO.Pipelines;
using PipeTransport.Interop;

namespace PipeTransport.Tests;

/// <summary>Small helpers over real fds for the fault, RawFd, hygiene, allocation and seam tests.</summary>
internal static class FdTestHelpers
{
    /// <summary>
    /// Open fds of the kinds this library creates: pipes, sockets, anonymous inodes (epoll, eventfd,
    /// inotify) and the FIFOs of these tests. Compared exactly, with no slack. Other paths (assemblies,
    /// native libraries, /proc files, the listing's own directory fd) are left out: the runtime opens
    /// them for a moment on its own threads (a JIT or library load), and the library never opens them.
    /// The test host also opens and closes fds of these kinds for a moment on its own threads (seen
    /// at start-up), so the listing is repeated until two in a row agree.
    /// </summary>
    public static int OpenFdCount()
    {
        HashSet<string> previous = TransportFds();
        for (int i = 0; i < 100; i++)
        {
            HashSet<string> current = TransportFds();
            if (current.SetEquals(previous))
            {
                return current.Count;
            }

            previous = current;
        }

        return previous.Count; // never settled: the assertion shows the difference
    }

    private static HashSet<string> TransportFds() =>
        FdTable().Where(p => IsTransportFd(p.Value)).Select(p => $"{p.Key}->{p.Value}").ToHashSet();

    private static bool IsTransportFd(string target) =>
        !target.StartsWith('/') || target.Contains("pipetransport-tests-", StringComparison.Ordinal);

    /// <summary>Every open fd of this process and what it points at.</summary>
    public static Dictionary<int, string> FdTable()
    {
        var table = new Dictionary<int, string>();
        foreach (string entry in Directory.GetFileSystemEntries("/proc/self/fd"))
        {
            if (int.TryParse(Path.GetFileName(entry), out int fd))
            {
                try
                {
                    table[fd] = new FileInfo(entry).LinkTarget ?? "?";
                }
                catch (IOException)
                {
                    // closed while we looked (the listing's own fd)
                }
            }
        }

        return table;
    }

    /// <summary>fds opened and closed since <paramref name="before"/>, for failure messages.</summary>
    public static string FdChanges(Dictionary<int, string> before)
    {
        Dictionary<int, string> now = FdTable();
        IEnumerable<string> opened = now.Where(p => !before.TryGetValue(p.Key, out string? t) || t != p.Value).Select(p => $"+{p.Key}->{p.Value}");
        IEnumerable<string> closed = before.Where(p => !now.TryGetValue(p.Key, out string? t) || t != p.Value).Select(p => $"-{p.Key}->{p.Value}");
        return string.Join(", ", opened.Concat(closed));
    }

    /// <summary>An anonymous pipe, both ends <c>O_NONBLOCK | O_CLOEXEC</c>.</summary>
    public static (SafeFdHandle Read, SafeFdHandle Write) Pipe()
    {
        int r = Sys.Pipe(out int readFd, out int writeFd);
        if (r < 0)
        {
            throw PipeTransportException.FromResult(r, "pipe2", null);
        }

        return (new SafeFdHandle(readFd), new SafeFdHandle(writeFd));
    }

    /// <summary>The fd number behind a <see cref="RawFd"/>.</summary>
    public static int FdOf(RawFd raw)
    {
        int number = -1;
        raw.Control(fd => number = fd);
        return number;
    }

    /// <summary>What <c>/proc/self/fd/N</c> points at (<c>pipe:[inode]</c>, <c>socket:[inode]</c>, a path).</summary>
    public static string Target(int fd) => new FileInfo($"/proc/self/fd/{fd}").LinkTarget ?? throw new InvalidOperationException($"fd {fd} has no link target");

    /// <summary>One non-blocking <c>read</c>: bytes read, 0 at EOF, or the negated errno (<c>-EAGAIN</c>).</summary>
    public static nint ReadOnce(int fd, Memory<byte> buffer) => Sys.Read(LinuxSyscalls.Instance, fd, buffer);

    /// <summary>One non-blocking <c>write</c>: bytes written or the negated errno (<c>-EAGAIN</c>, <c>-EPIPE</c>).</summary>
    public static nint WriteOnce(int fd, ReadOnlyMemory<byte> data) => Sys.Write(LinuxSyscalls.Instance, fd, new ReadOnlySequence<byte>(data));

    /// <summary>Writes into a non-blocking pipe until it takes nothing more, down to single bytes; returns how much went in.</summary>
    public static long FillPipe(int writeFd)
    {
        var chunk = new byte[65536];
        long total = 0;
        for (int size = chunk.Length; size >= 1; size /= 2)
        {
            nint n;
            while ((n = WriteOnce(writeFd, chunk.AsMemory(0, size))) > 0)
            {
                total += n;
            }

            if (n != -Libc.EAGAIN)
            {
                throw PipeTransportException.FromResult(n, "write", $"fd {writeFd}");
            }
        }

        return total;
    }

    /// <summary>Reads a non-blocking fd until <c>EAGAIN</c>; returns how much was read.</summary>
    public static long Drain(int readFd)
    {
        var buffer = new byte[65536];
        long total = 0;
        nint n;
        while ((n = ReadOnce(readFd, buffer)) > 0)
        {
            total += n;
        }

        return total;
    }

    /// <summary>Reads <paramref name="reader"/> to its end.</summary>
    public static async Task<byte[]> ReadToEndAsync(PipeReader reader, CancellationToken cancellationToken)
    {
        var received = new MemoryStream();
        while (true)
        {
            ReadResult result = await reader.ReadAsync(cancellationToken);
            foreach (ReadOnlyMemory<byte> segment in result.Buffer)
            {
                received.Write(segment.Span);
            }

            reader.AdvanceTo(result.Buffer.End);
            if (result.IsCompleted)
            {
                return received.ToArray();
            }
        }
    }

    /// <summary>Reads exactly <paramref name="count"/> bytes (fails at an early EOF).</summary>
    public static async Task<byte[]> ReadExactlyAsync(PipeReader reader, int count, CancellationToken cancellationToken)
    {
        ReadResult result = await reader.ReadAtLeastAsync(count, cancellationToken);
        if (result.Buffer.Length < count)
        {
            throw new EndOfStreamException($"EOF after {result.Buffer.Length} of {count} bytes");
        }

        ReadOnlySequence<byte> slice = result.Buffer.Slice(0, count);
        byte[] bytes = slice.ToArray();
        reader.AdvanceTo(slice.End);
        return bytes;
    }

    /// <summary>Deterministic pseudo-random bytes.</summary>
    public static byte[] RandomBytes(int count, int seed)
    {
        var bytes = new byte[count];
        new Random(seed).NextBytes(bytes);
        return bytes;
    }

    /// <summary>Starts <c>/bin/sh -c script</c> with no redirection.</summary>
    public static Process StartShell(string script)
    {
        var info = new ProcessStartInfo("/bin/sh") { UseShellExecute = false };
        info.ArgumentList.Add("-c");
        info.ArgumentList.Add(script);
        return Process.Start(info) ?? throw new InvalidOperationException("sh did not start");
    }
}

/// <summary>A fresh directory under the temp directory, removed on dispose.</summary>
internal sealed class TempDirectory : IDisposable
{
    public TempDirectory()
    {
        Path = Directory.CreateTempSubdirectory("pipetransport-tests-").FullName;
    }

    public string Path { get; }

    public string File(string name) => System.IO.Path.Combine(Path, name);

    public void Dispose()
    {
        try
        {
            Directory.Delete(Path, recursive: true);
        }
        catch (IOException)
        {
        }
        catch (UnauthorizedAccessException)
        {
        }
    }
}
