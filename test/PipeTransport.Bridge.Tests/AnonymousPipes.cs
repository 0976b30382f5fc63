using Microsoft.Win32.SafeHandles;
using Mono.Unix.Native;
using NUnit.Framework;

namespace PipeTransport.Bridge.Tests;

/// <summary>Anonymous pipes for the tests of the library's raw-fd engines.</summary>
internal static class AnonymousPipes
{
    /// <summary>A new pipe's two ends.</summary>
    public static (SafeFdHandle Read, SafeFdHandle Write) Pipe()
    {
        Assert.That(Syscall.pipe(out int readFd, out int writeFd), Is.Zero);
        return (new SafeFdHandle(readFd), new SafeFdHandle(writeFd));
    }

    /// <summary>Blocking reads of a pipe's read end on a thread, to EOF; disposes the read end.</summary>
    public static async Task<byte[]> ReadToEndAsync(SafeFdHandle readEnd, CancellationToken cancellationToken)
    {
        using var reader = new FileStream(new SafeFileHandle(readEnd.Fd, ownsHandle: false), FileAccess.Read, 0);
        var received = new MemoryStream();
        await Task.Run(() => reader.CopyTo(received), cancellationToken);
        readEnd.Dispose();
        return received.ToArray();
    }
}
