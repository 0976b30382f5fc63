using Mono.Unix.Native;
using NUnit.Framework;

namespace PipeTransport.Kestrel.Tests;

/// <summary>
/// <see cref="PipeTransportOptions.UnixSocketOwner"/> and <see cref="PipeTransportOptions.UnixSocketGroup"/>:
/// the socket file Kestrel listens on gets them (with the mode) before anyone can connect, and a name
/// that does not exist fails the start before any file is made.
/// </summary>
public sealed class UnixSocketOwnershipTests
{
    private const UnixFileMode Mode0660 = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.GroupWrite;
    private string _dir = null!;

    [SetUp]
    public void SetUp() => _dir = Directory.CreateTempSubdirectory("ptk-own-").FullName;

    [TearDown]
    public void TearDown() => Directory.Delete(_dir, recursive: true);

    private string SocketPath => Path.Combine(_dir, "app.sock");

    /// <summary>
    /// A group other than the process's own when we may choose one (root: www-data, as for nginx), else
    /// the process's own group (the only kind a normal user may give a file to).
    /// </summary>
    internal static (string Name, uint Id) TargetGroup()
    {
        if (Syscall.geteuid() == 0 && Syscall.getgrnam("www-data") is { } wwwData)
        {
            return ("www-data", wwwData.gr_gid);
        }

        uint gid = Syscall.getegid();
        return (Syscall.getgrgid(gid)?.gr_name ?? gid.ToString(System.Globalization.CultureInfo.InvariantCulture), gid);
    }

    [Test, CancelAfter(20_000)]
    public async Task The_socket_file_has_the_requested_group_and_mode(CancellationToken ct)
    {
        (string group, uint gid) = TargetGroup();
        await using var server = await TestServer.StartAsync(k => k.ListenUnixSocket(SocketPath), ct, o =>
        {
            o.UnixSocketFileMode = Mode0660;
            o.UnixSocketGroup = group;
        });

        Assert.That(Syscall.stat(SocketPath, out Stat st), Is.Zero);
        Assert.Multiple(() =>
        {
            Assert.That(st.st_gid, Is.EqualTo(gid), $"group {group}");
            Assert.That(st.st_uid, Is.EqualTo(Syscall.geteuid()), "the owner is left alone");
            Assert.That(File.GetUnixFileMode(SocketPath), Is.EqualTo(Mode0660));
        });
        using var client = TestServer.CreateUnixClient(SocketPath);
        Assert.That(await client.GetStringAsync("/", ct), Is.EqualTo("hello"));
    }

    [Test, CancelAfter(20_000)]
    public async Task The_fifos_the_transport_creates_get_the_group_too(CancellationToken ct)
    {
        (string group, uint gid) = TargetGroup();
        string requests = Path.Combine(_dir, "requests.fifo");
        string responses = Path.Combine(_dir, "responses.fifo");
        await using var server = await TestServer.StartAsync(k => k.Listen(new FifoEndPoint(requests, responses)), ct, o =>
        {
            o.UnixSocketFileMode = Mode0660;
            o.UnixSocketGroup = group;
        });

        foreach (string path in new[] { requests, responses })
        {
            Assert.That(Syscall.stat(path, out Stat st), Is.Zero);
            Assert.That((st.st_gid, File.GetUnixFileMode(path)), Is.EqualTo((gid, Mode0660)), path);
        }
    }

    [Test, CancelAfter(20_000)]
    public async Task Owner_and_group_by_numeric_id(CancellationToken ct)
    {
        if (Syscall.geteuid() != 0)
        {
            Assert.Ignore("giving a file to another user needs root (CAP_CHOWN)");
        }

        Passwd nobody = Syscall.getpwnam("nobody") ?? throw new AssertionException("no user 'nobody'");
        (_, uint gid) = TargetGroup();
        await using var server = await TestServer.StartAsync(k => k.ListenUnixSocket(SocketPath), ct, o =>
        {
            o.UnixSocketOwner = nobody.pw_uid.ToString(System.Globalization.CultureInfo.InvariantCulture);
            o.UnixSocketGroup = gid.ToString(System.Globalization.CultureInfo.InvariantCulture);
        });

        Assert.That(Syscall.stat(SocketPath, out Stat st), Is.Zero);
        Assert.That((st.st_uid, st.st_gid), Is.EqualTo((nobody.pw_uid, gid)));
    }

    [Test, CancelAfter(20_000)]
    public async Task An_unknown_group_fails_the_start_before_the_socket_file_exists(CancellationToken ct)
    {
        var started = TestServer.StartAsync(k => k.ListenUnixSocket(SocketPath), ct, o =>
        {
            o.UnixSocketFileMode = Mode0660;
            o.UnixSocketGroup = "no-such-group-pt";
        });

        Exception? caught = null;
        try
        {
            await (await started).DisposeAsync();
        }
        catch (Exception e)
        {
            caught = e;
        }

        var error = FindInChain<PipeTransportException>(caught);
        Assert.That(error, Is.Not.Null, $"a PipeTransportException, got: {caught}");
        Assert.Multiple(() =>
        {
            Assert.That(error!.Errno, Is.EqualTo(Errno.EINVAL));
            Assert.That(error.Target, Is.EqualTo(SocketPath));
            Assert.That(error.Message, Does.Contain(SocketPath).And.Contain("no such group 'no-such-group-pt'").And.Contain("EINVAL"));
            Assert.That(File.Exists(SocketPath) || Directory.EnumerateFileSystemEntries(_dir).Any(), Is.False, "nothing was created");
        });
    }

    private static T? FindInChain<T>(Exception? e)
        where T : Exception
    {
        for (; e is not null; e = e.InnerException)
        {
            if (e is T found)
            {
                return found;
            }

            if (e is AggregateException aggregate && aggregate.InnerExceptions.Select(FindInChain<T>).FirstOrDefault(x => x is not null) is { } inner)
            {
                return inner;
            }
        }

        return null;
    }
}
