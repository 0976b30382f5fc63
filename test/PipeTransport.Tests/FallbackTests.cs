using System.Buffers;
using System.IO.Pipelines;
using Microsoft.Win32.SafeHandles;
using NUnit.Framework;

namespace PipeTransport.Tests;

/// <summary>Fds epoll refuses (regular files, some devices) work through blocking calls behind the same API.</summary>
public sealed class FallbackTests
{
    private string _dir = null!;

    [SetUp]
    public void SetUp() => _dir = Directory.CreateTempSubdirectory("pt-file-").FullName;

    [TearDown]
    public void TearDown() => Directory.Delete(_dir, recursive: true);

    [Test, CancelAfter(30_000)]
    public async Task RegularFilesCopyThroughFromFds(CancellationToken ct)
    {
        string source = Path.Combine(_dir, "in");
        string target = Path.Combine(_dir, "out");
        var data = new TestData(41);
        byte[] content = new byte[5 * 1024 * 1024 + 123];
        data.Fill(content);
        await File.WriteAllBytesAsync(source, content, ct);

        SafeFileHandle input = File.OpenHandle(source, FileMode.Open, FileAccess.Read);
        SafeFileHandle output = File.OpenHandle(target, FileMode.CreateNew, FileAccess.Write);
        await using (FdConnection connection = FdConnection.FromFds(input, output))
        {
            Assert.That(connection.InputFd.IsPollable, Is.False);
            Assert.That(connection.OutputFd.IsPollable, Is.False);
            await connection.Input.CopyToAsync(connection.Output, ct);
            await connection.Output.CompleteAsync();
        }

        Assert.That(input.IsClosed && output.IsClosed, Is.True, "the connection owns and closes both");
        Assert.That(await File.ReadAllBytesAsync(target, ct), Is.EqualTo(content));
    }

    [Test, CancelAfter(10_000)]
    public async Task ADeviceEpollRefusesStillReads(CancellationToken ct)
    {
        await using FdConnection zero = FdConnection.FromFd(File.OpenHandle("/dev/zero", FileMode.Open, FileAccess.ReadWrite));
        ReadResult result = await zero.Input.ReadAtLeastAsync(1 << 20, ct);
        Assert.That(result.Buffer.Length, Is.GreaterThanOrEqualTo(1 << 20));
        Assert.That(result.Buffer.ToArray().All(b => b == 0), Is.True);
        zero.Input.AdvanceTo(result.Buffer.End);

        FlushResult written = await zero.Output.WriteAsync(new byte[100_000], ct);
        Assert.That(written.IsCompleted, Is.False, "writes to /dev/zero are accepted");
    }

    [Test, CancelAfter(10_000)]
    public void ANonFdIsRefusedClearly()
    {
        var closed = new SafeFdHandle(12345, ownsHandle: false);
        var ex = Assert.Throws<ArgumentException>(() => FdConnection.FromFd(closed));
        Assert.That(ex!.Message, Does.Contain("fd 12345").And.Contain("EBADF"));

        var disposed = File.OpenHandle("/dev/null");
        disposed.Dispose();
        Assert.Throws<ObjectDisposedException>(() => FdConnection.FromFd(disposed));
        using var directory = new SafeFdHandle(Interop.Sys.Open(_dir, Interop.Libc.O_RDONLY));
        Assert.That(() => FdConnection.FromFd(directory), Throws.ArgumentException.With.Message.Contains("EISDIR"));
    }
}
