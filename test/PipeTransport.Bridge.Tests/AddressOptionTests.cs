using System.Net;
using System.Net.Sockets;
using System.Text;
using Mono.Unix.Native;
using NUnit.Framework;

namespace PipeTransport.Bridge.Tests;

/// <summary>socat address options after the commas (<c>tcp-listen:8080,reuseaddr,fork</c>), each with a real peer.</summary>
public sealed class AddressOptionTests
{
    /// <summary>
    /// reuseaddr is what lets a server listen again on a port that still has a connection in TIME_WAIT
    /// (the server closed first): reuseaddr=0 then fails with EADDRINUSE, reuseaddr listens.
    /// </summary>
    [Test, CancelAfter(30_000)]
    public async Task ReuseaddrListensAgainOverTimeWait(CancellationToken cancellationToken)
    {
        using var dir = new TempDir();
        string data = dir["data"];
        await File.WriteAllTextAsync(data, "served\n", cancellationToken);
        int port;
        await using (var first = BridgeProcess.Start("-u", "-d", "-d", $"file:{data}", "tcp-listen:0,bind=127.0.0.1,reuseaddr,backlog=4"))
        {
            port = await first.WaitTcpPortAsync(cancellationToken);
            await using var client = BridgeProcess.StartSocat("-u", $"TCP:127.0.0.1:{port}", "STDOUT");
            client.Process.StandardInput.Close();
            Assert.That(await client.Process.StandardOutput.ReadToEndAsync(cancellationToken), Is.EqualTo("served\n"));
            Assert.That(await first.WaitExitAsync(cancellationToken), Is.Zero, first.Stderr);
            Assert.That(await client.WaitExitAsync(cancellationToken), Is.Zero, client.Stderr);
        }

        await using (var refused = BridgeProcess.Start($"tcp-listen:127.0.0.1:{port},reuseaddr=0", "stdio"))
        {
            Assert.That(await refused.WaitExitAsync(cancellationToken), Is.EqualTo(1), refused.Stderr);
            Assert.That(refused.Stderr, Does.EndWith("EADDRINUSE (Address already in use)"));
        }

        await using var again = BridgeProcess.Start(["-d", "-d", $"tcp-listen:{port},bind=127.0.0.1,reuseaddr", "stdio"], redirectStdio: true);
        Assert.That(await again.WaitListeningAsync(cancellationToken), Is.EqualTo($"tcp-listen:127.0.0.1:{port}"));
        await using var second = BridgeProcess.StartSocat($"TCP:127.0.0.1:{port}", "STDIO");
        await second.Process.StandardInput.WriteAsync("ping\n");
        second.Process.StandardInput.Close();
        Assert.That(await again.Process.StandardOutput.ReadLineAsync(cancellationToken), Is.EqualTo("ping"));
        again.Process.StandardInput.Close();
        Assert.That(await again.WaitExitAsync(cancellationToken), Is.Zero, again.Stderr);
    }

    /// <summary>
    /// unix-listen with unlink-early (a stale regular file is in the way), mode, user and group (our
    /// own ids, which need no privilege) and backlog; a socat client gets its echo.
    /// </summary>
    [Test, CancelAfter(30_000)]
    public async Task UnixListenTakesModeOwnerAndUnlinkEarly(CancellationToken cancellationToken)
    {
        using var dir = new TempDir();
        string socketPath = dir["s.sock"];
        await File.WriteAllTextAsync(socketPath, "stale", cancellationToken);
        uint uid = Syscall.getuid(), gid = Syscall.getgid();
        await using var bridge = BridgeProcess.Start("-d", "-d",
            $"unix-listen:{socketPath},unlink-early,mode=0660,user={Environment.UserName},group={gid},backlog=8",
            $"fifo:{dir["loop"]}!!fifo:{dir["loop"]}");
        await bridge.WaitListeningAsync(cancellationToken);

        Assert.That(Syscall.stat(socketPath, out Stat stat), Is.Zero);
        Assert.Multiple(() =>
        {
            Assert.That(stat.st_mode & FilePermissions.S_IFMT, Is.EqualTo(FilePermissions.S_IFSOCK));
            Assert.That((int)(stat.st_mode & (FilePermissions)0x1FF), Is.EqualTo(0x1B0), "mode 0660");
            Assert.That(stat.st_uid, Is.EqualTo(uid));
            Assert.That(stat.st_gid, Is.EqualTo(gid));
        });
        await using var client = BridgeProcess.StartSocat($"UNIX-CONNECT:{socketPath}", "STDIO");
        await client.Process.StandardInput.WriteAsync("echo me\n");
        client.Process.StandardInput.Close();
        Assert.That(await client.Process.StandardOutput.ReadToEndAsync(cancellationToken), Is.EqualTo("echo me\n"));
        Assert.That(await bridge.WaitExitAsync(cancellationToken), Is.Zero, bridge.Stderr);
        Assert.That(File.Exists(socketPath), Is.False, "the socket file is removed");
    }

    /// <summary>A FIFO pipebridge creates gets mode= (exactly, no umask); socat reads what comes through it.</summary>
    [Test, CancelAfter(30_000)]
    public async Task FifoIsCreatedWithMode(CancellationToken cancellationToken)
    {
        using var dir = new TempDir();
        string fifo = dir["f"];
        await using var bridge = BridgeProcess.Start(["-u", "-d", "-d", "stdio", $"fifo:{fifo},mode=0640"], redirectStdio: true);
        await bridge.WaitLineAsync(new System.Text.RegularExpressions.Regex("created (fifo:.+)$"), cancellationToken);
        Assert.That(Syscall.stat(fifo, out Stat stat), Is.Zero);
        Assert.That(stat.st_mode & FilePermissions.S_IFMT, Is.EqualTo(FilePermissions.S_IFIFO));
        Assert.That((int)(stat.st_mode & (FilePermissions)0x1FF), Is.EqualTo(0x1A0), "mode 0640");

        await using var reader = BridgeProcess.StartSocat("-u", $"OPEN:{fifo}", "STDOUT");
        reader.Process.StandardInput.Close();
        await bridge.Process.StandardInput.WriteAsync("through the fifo\n");
        bridge.Process.StandardInput.Close();
        Assert.That(await reader.Process.StandardOutput.ReadToEndAsync(cancellationToken), Is.EqualTo("through the fifo\n"));
        Assert.That(await bridge.WaitExitAsync(cancellationToken), Is.Zero, bridge.Stderr);
        Assert.That(await reader.WaitExitAsync(cancellationToken), Is.Zero, reader.Stderr);
    }

    /// <summary><c>file:out.txt,creat</c> creates out.txt (not a file named "out.txt,creat"); append and trunc do what open(2) does.</summary>
    [Test, CancelAfter(30_000)]
    public async Task FileOptionsCreateAppendTruncate(CancellationToken cancellationToken)
    {
        using var dir = new TempDir();
        string output = dir["out.txt"];
        await RunStdinToAsync($"file:{output},creat,mode=0600", "one\n", cancellationToken);
        Assert.That(Directory.GetFiles(dir.Path), Is.EqualTo(new[] { output }));
        Assert.That(await File.ReadAllTextAsync(output, cancellationToken), Is.EqualTo("one\n"));
        Assert.That(Syscall.stat(output, out Stat stat), Is.Zero);
        Assert.That((int)(stat.st_mode & (FilePermissions)0x1FF), Is.EqualTo(0x180), "mode 0600");

        await RunStdinToAsync($"file:{output},append", "two\n", cancellationToken);
        Assert.That(await File.ReadAllTextAsync(output, cancellationToken), Is.EqualTo("one\ntwo\n"));

        // Read and written (both directions, a socat client on the other side): trunc empties it first.
        await using var bridge = BridgeProcess.Start("-d", "-d", "tcp-listen:127.0.0.1:0", $"file:{output},trunc");
        int port = await bridge.WaitTcpPortAsync(cancellationToken);
        await using var client = BridgeProcess.StartSocat($"TCP:127.0.0.1:{port}", "STDIO");
        await client.Process.StandardInput.WriteAsync("three\n");
        client.Process.StandardInput.Close();
        Assert.That(await client.Process.StandardOutput.ReadToEndAsync(cancellationToken), Is.Empty, "nothing was left to read");
        Assert.That(await bridge.WaitExitAsync(cancellationToken), Is.Zero, bridge.Stderr);
        Assert.That(await File.ReadAllTextAsync(output, cancellationToken), Is.EqualTo("three\n"));

        await using var exclusive = BridgeProcess.Start(["-u", "stdio", $"file:{output},creat,excl"], redirectStdio: true);
        exclusive.Process.StandardInput.Close();
        Assert.That(await exclusive.WaitExitAsync(cancellationToken), Is.EqualTo(1));
        Assert.That(exclusive.Stderr, Is.EqualTo($"pipebridge: file:{output},creat,excl: open: EEXIST (File exists)"));
    }

    /// <summary>fork as an address option is --fork: socat clients one after another and at once, each served.</summary>
    [Test, CancelAfter(30_000)]
    public async Task ForkOptionServesManyClients(CancellationToken cancellationToken)
    {
        using var dir = new TempDir();
        string echoPath = dir["echo.sock"];
        await using var echo = BridgeProcess.StartSocat($"UNIX-LISTEN:{echoPath},fork", "EXEC:cat");
        await echo.WaitListeningAsync(cancellationToken);
        await using var bridge = BridgeProcess.Start("-d", "-d", "tcp-listen:0,bind=127.0.0.1,fork,reuseaddr", $"unix:{echoPath}");
        int port = await bridge.WaitTcpPortAsync(cancellationToken);

        for (int round = 0; round < 2; round++)
        {
            await Task.WhenAll(Enumerable.Range(0, 3).Select(async i =>
            {
                await using var client = BridgeProcess.StartSocat($"TCP:127.0.0.1:{port}", "STDIO");
                await client.Process.StandardInput.WriteAsync($"client {round}.{i}\n");
                client.Process.StandardInput.Close();
                Assert.That(await client.Process.StandardOutput.ReadToEndAsync(cancellationToken), Is.EqualTo($"client {round}.{i}\n"));
                Assert.That(await client.WaitExitAsync(cancellationToken), Is.Zero, client.Stderr);
            }));
        }
        Assert.That(bridge.Process.HasExited, Is.False, "the listener keeps serving");
        bridge.Signal(Signum.SIGTERM);
        Assert.That(await bridge.WaitExitAsync(cancellationToken), Is.EqualTo(143), bridge.Stderr);
    }

    private static IEnumerable<TestCaseData> BadOptions()
    {
        yield return Case("unknown option 'bogus'", "-u", "stdio", "file:{0}/out.txt,creat,bogus");
        yield return Case("option 'creat' does not apply to tcp-listen", "tcp-listen:0,creat", "file:{0}/out.txt");
        yield return Case("option 'reuseaddr' does not apply to unix-listen", "unix-listen:{0}/s.sock,reuseaddr", "fifo:{0}/a!!fifo:{0}/b");
        yield return Case("option 'mode' needs octal permissions", "-u", "stdio", "fifo:{0}/f,mode=999");
        yield return Case("option 'backlog' needs a positive number", "unix-listen:{0}/s.sock,backlog=0", "fifo:{0}/a!!fifo:{0}/b");
        yield return Case("no such user 'no-such-user-w15'", "-u", "stdio", "file:{0}/out.txt,user=no-such-user-w15");
        yield return Case("no such group 'no-such-group-w15'", "unix-listen:{0}/s.sock,group=no-such-group-w15", "fifo:{0}/a!!fifo:{0}/b");
        yield return Case("option 'fork' is given twice", "tcp-listen:0,fork,fork", "file:{0}/out.txt");
        yield return Case("fork applies to ADDRESS1", "fifo:{0}/a!!fifo:{0}/b", "unix-listen:{0}/s.sock,fork");
        yield return Case("option 'append' takes no value, or 0 or 1", "-u", "stdio", "file:{0}/out.txt,append=often");
        yield return Case("give the host once", "tcp-listen:127.0.0.1:0,bind=127.0.0.1", "file:{0}/out.txt");
        yield return Case("option 'bind' does not apply to tcp (connect)", "file:{0}/out.txt", "tcp:127.0.0.1:9,bind=127.0.0.1");
        yield return Case("option 'creat' does not apply to stdio", "stdio,creat", "file:{0}/out.txt");
    }

    private static TestCaseData Case(string expected, params string[] args) =>
        new TestCaseData(args, expected).SetArgDisplayNames(string.Join(' ', args));

    /// <summary>A bad option: exit 2, one line naming the option and the address, and nothing created.</summary>
    [TestCaseSource(nameof(BadOptions)), CancelAfter(10_000)]
    public async Task BadOptionExitsWithTwoAndCreatesNothing(string[] argTemplates, string expected, CancellationToken cancellationToken)
    {
        using var dir = new TempDir();
        string[] args = argTemplates.Select(a => a.Replace("{0}", dir.Path, StringComparison.Ordinal)).ToArray();
        await using var bridge = BridgeProcess.Start(args);
        int exitCode = await bridge.WaitExitAsync(cancellationToken);
        string badAddress = args.Last(a => a.Contains(',', StringComparison.Ordinal));
        Assert.Multiple(() =>
        {
            Assert.That(exitCode, Is.EqualTo(2), bridge.Stderr);
            Assert.That(bridge.Stderr, Does.StartWith("pipebridge: ").And.Contain(expected).And.Contain(badAddress));
            Assert.That(bridge.Stderr.Split('\n'), Has.Length.EqualTo(1), "one line on stderr");
            Assert.That(Directory.GetFileSystemEntries(dir.Path), Is.Empty, "nothing created");
        });
    }

    private static async Task RunStdinToAsync(string address, string text, CancellationToken cancellationToken)
    {
        await using var bridge = BridgeProcess.Start(["-u", "stdio", address], redirectStdio: true);
        await bridge.Process.StandardInput.BaseStream.WriteAsync(Encoding.ASCII.GetBytes(text), cancellationToken);
        bridge.Process.StandardInput.Close();
        Assert.That(await bridge.WaitExitAsync(cancellationToken), Is.Zero, bridge.Stderr);
    }
}
