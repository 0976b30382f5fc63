using System.Runtime.InteropServices;

namespace PipeTransport.Interop;

/// <summary>
/// Control-plane and setup calls with the one <c>EINTR</c> policy of the project: a call that
/// was interrupted by a signal before doing anything is simply made again. Results are the
/// libc value when it succeeded, or the negated errno.
/// </summary>
internal static unsafe class Sys
{
    /// <summary>The single place where an interrupted call is recognised.</summary>
    public static bool Interrupted(nint result) => result == -1 && Marshal.GetLastPInvokeError() == Libc.EINTR;

    /// <summary>The result, or the negated errno when it failed.</summary>
    public static nint Result(nint result) => result >= 0 ? result : -Marshal.GetLastPInvokeError();

    public static nint Read(ISyscalls calls, int fd, Memory<byte> buffer)
    {
        nint r;
        while ((r = calls.Read(fd, buffer)) == -Libc.EINTR) { }
        return r;
    }

    public static nint Write(ISyscalls calls, int fd, in System.Buffers.ReadOnlySequence<byte> buffer)
    {
        nint r;
        while ((r = calls.Write(fd, buffer)) == -Libc.EINTR) { }
        return r;
    }

    public static int BytesAvailable(ISyscalls calls, int fd)
    {
        int r;
        while ((r = calls.BytesAvailable(fd)) == -Libc.EINTR) { }
        return r;
    }

    public static int Open(string path, int flags, int mode = 0)
    {
        int r;
        while (Interrupted(r = Libc.Open(path, flags | Libc.O_CLOEXEC, mode))) { }
        return (int)Result(r);
    }

    /// <summary>
    /// The file type (<c>st_mode &amp; S_IFMT</c>) and inode of <paramref name="path"/>, or of the link
    /// itself when <paramref name="followLinks"/> is false; 0 or the negated errno.
    /// </summary>
    public static int Stat(string path, bool followLinks, out uint type, out ulong inode) =>
        Statx(Libc.AT_FDCWD, path, followLinks ? 0 : Libc.AT_SYMLINK_NOFOLLOW, out type, out inode);

    /// <summary>The file type and inode of an open fd; 0 or the negated errno.</summary>
    public static int Stat(int fd, out uint type, out ulong inode) => Statx(fd, "", Libc.AT_EMPTY_PATH, out type, out inode);

    public static int MakeFifo(string path, UnixFileMode mode) => (int)Result(Libc.Mkfifo(path, (uint)mode));

    public static int Chmod(string path, UnixFileMode mode) => (int)Result(Libc.Chmod(path, (uint)mode));

    public static int Unlink(string path) => (int)Result(Libc.Unlink(path));

    /// <summary>The soft <c>RLIMIT_NOFILE</c> (every fd number is below it), or the negated errno.</summary>
    public static long FdLimit()
    {
        ulong* limits = stackalloc ulong[2];
        return Libc.GetRLimit(Libc.RLIMIT_NOFILE, limits) == 0 ? (long)Math.Min(limits[0], int.MaxValue) : -Marshal.GetLastPInvokeError();
    }

    /// <summary>
    /// How many fds the process has open, counted in <c>/proc/self/fd</c> (the fd the count reads
    /// through is left out), or the negated errno: <c>EMFILE</c> when the table is full.
    /// </summary>
    public static int CountOpenFds()
    {
        int dir = Open("/proc/self/fd", Libc.O_RDONLY);
        if (dir < 0)
        {
            return dir;
        }

        const int BufferSize = 16 * 1024;
        byte* buffer = stackalloc byte[BufferSize];
        int count = 0;
        try
        {
            while (true)
            {
                nint n = Result(Libc.GetDents64(dir, buffer, BufferSize));
                if (n <= 0)
                {
                    return n == 0 ? count - 1 : (int)n;
                }

                // struct linux_dirent64: d_ino, d_off (8 bytes each), d_reclen (2), d_type (1), d_name; "." and ".." are not fds.
                for (nint offset = 0; offset < n; offset += *(ushort*)(buffer + offset + 16))
                {
                    if (buffer[offset + 19] != (byte)'.')
                    {
                        count++;
                    }
                }
            }
        }
        finally
        {
            Libc.Close(dir);
        }
    }

    public static int Fcntl(int fd, int cmd, int arg)
    {
        int r;
        while (Interrupted(r = Libc.Fcntl(fd, cmd, arg))) { }
        return (int)Result(r);
    }

    /// <summary>Sets or clears <c>O_NONBLOCK</c>; returns whether it was set before, or the negated errno.</summary>
    public static int SetNonBlocking(int fd, bool nonBlocking)
    {
        int flags = Fcntl(fd, Libc.F_GETFL, 0);
        if (flags < 0)
        {
            return flags;
        }

        bool was = (flags & Libc.O_NONBLOCK) != 0;
        if (was != nonBlocking)
        {
            int r = Fcntl(fd, Libc.F_SETFL, nonBlocking ? flags | Libc.O_NONBLOCK : flags & ~Libc.O_NONBLOCK);
            if (r < 0)
            {
                return r;
            }
        }

        return was ? 1 : 0;
    }

    /// <summary>Sets <c>FD_CLOEXEC</c> on an fd this process inherited; returns 0 or the negated errno.</summary>
    public static int SetCloseOnExec(int fd)
    {
        int flags = Fcntl(fd, Libc.F_GETFD, 0);
        return flags < 0 || (flags & Libc.FD_CLOEXEC) != 0 ? Math.Min(flags, 0) : Fcntl(fd, Libc.F_SETFD, flags | Libc.FD_CLOEXEC);
    }

    /// <summary>Checks that <paramref name="fd"/> is an open descriptor (<c>fcntl(F_GETFD)</c>).</summary>
    public static int CheckOpen(int fd) => Fcntl(fd, Libc.F_GETFD, 0);

    public static int Shutdown(int fd, int how) => (int)Result(Libc.Shutdown(fd, how));

    public static int Pipe(out int readFd, out int writeFd)
    {
        int* fds = stackalloc int[2];
        int r = (int)Result(Libc.Pipe2(fds, Libc.O_CLOEXEC | Libc.O_NONBLOCK));
        readFd = fds[0];
        writeFd = fds[1];
        return r;
    }

    public static int SocketPair(out int fd0, out int fd1)
    {
        int* fds = stackalloc int[2];
        int r = (int)Result(Libc.SocketPair(Libc.AF_UNIX, Libc.SOCK_STREAM | Libc.SOCK_CLOEXEC | Libc.SOCK_NONBLOCK, 0, fds));
        fd0 = fds[0];
        fd1 = fds[1];
        return r;
    }

    public static int Socket(int family) =>
        (int)Result(Libc.Socket(family, Libc.SOCK_STREAM | Libc.SOCK_CLOEXEC | Libc.SOCK_NONBLOCK, 0));

    /// <summary>A Unix <c>SOCK_SEQPACKET</c> socket (message boundaries kept), non-blocking and close-on-exec.</summary>
    public static int SeqPacketSocket() =>
        (int)Result(Libc.Socket(Libc.AF_UNIX, Libc.SOCK_SEQPACKET | Libc.SOCK_CLOEXEC | Libc.SOCK_NONBLOCK, 0));

    /// <summary>A duplicate of <paramref name="fd"/> with <c>FD_CLOEXEC</c> (<c>F_DUPFD_CLOEXEC</c>), or the negated errno.</summary>
    public static int DuplicateCloseOnExec(int fd) => Fcntl(fd, Libc.F_DUPFD_CLOEXEC, 0);

    public static int Rename(string oldPath, string newPath) => (int)Result(Libc.Rename(oldPath, newPath));

    public static uint EffectiveUserId() => Libc.GetEuid();

    /// <summary>
    /// Sends one message with <paramref name="fds"/> attached (<c>SCM_RIGHTS</c>, at most 253) and
    /// <c>MSG_NOSIGNAL</c>; returns the bytes sent or the negated errno.
    /// </summary>
    public static nint SendWithFds(int fd, ReadOnlySpan<byte> data, ReadOnlySpan<int> fds)
    {
        int space = fds.IsEmpty ? 0 : Libc.CmsgHeaderSize + Align(fds.Length * sizeof(int));
        byte* control = stackalloc byte[Math.Max(space, 1)];
        new Span<byte>(control, Math.Max(space, 1)).Clear();
        if (space != 0)
        {
            *(nuint*)control = (nuint)(Libc.CmsgHeaderSize + fds.Length * sizeof(int));
            *(int*)(control + 8) = Libc.SOL_SOCKET;
            *(int*)(control + 12) = Libc.SCM_RIGHTS;
            fds.CopyTo(new Span<int>(control + Libc.CmsgHeaderSize, fds.Length));
        }

        fixed (byte* p = data)
        {
            Libc.IoVec iov = new() { Base = p, Length = (nuint)data.Length };
            Libc.MsgHdr message = new() { Iov = &iov, IovLength = 1, Control = space == 0 ? null : control, ControlLength = (nuint)space };
            nint r;
            while (Interrupted(r = Libc.SendMsg(fd, &message, Libc.MSG_NOSIGNAL))) { }
            return Result(r);
        }
    }

    /// <summary>
    /// Receives one message and the fds attached to it, close-on-exec (<c>MSG_CMSG_CLOEXEC</c>). Fds that
    /// do not fit in <paramref name="fds"/> are closed and <paramref name="truncated"/> is set, as it is
    /// when the message did not fit in <paramref name="buffer"/>. Returns the bytes received (0 at EOF)
    /// or the negated errno.
    /// </summary>
    public static nint ReceiveWithFds(int fd, Span<byte> buffer, Span<int> fds, out int fdCount, out bool truncated)
    {
        const int ControlSize = 4096; // room for the kernel's maximum of 253 fds in one message
        byte* control = stackalloc byte[ControlSize];
        fdCount = 0;
        truncated = false;
        nint r;
        Libc.MsgHdr message;
        fixed (byte* p = buffer)
        {
            Libc.IoVec iov = new() { Base = p, Length = (nuint)buffer.Length };
            message = new() { Iov = &iov, IovLength = 1, Control = control, ControlLength = ControlSize };
            while (Interrupted(r = Libc.RecvMsg(fd, &message, Libc.MSG_CMSG_CLOEXEC))) { }
        }

        if (r < 0)
        {
            return Result(r);
        }

        truncated = (message.Flags & (Libc.MSG_TRUNC | Libc.MSG_CTRUNC)) != 0;
        for (nuint offset = 0; offset + Libc.CmsgHeaderSize <= message.ControlLength;)
        {
            byte* header = control + offset;
            nuint length = *(nuint*)header;
            if (length < Libc.CmsgHeaderSize || offset + length > message.ControlLength)
            {
                break;
            }

            if (*(int*)(header + 8) == Libc.SOL_SOCKET && *(int*)(header + 12) == Libc.SCM_RIGHTS)
            {
                int count = (int)(length - Libc.CmsgHeaderSize) / sizeof(int);
                int* received = (int*)(header + Libc.CmsgHeaderSize);
                for (int i = 0; i < count; i++)
                {
                    if (fdCount < fds.Length)
                    {
                        fds[fdCount++] = received[i];
                    }
                    else
                    {
                        Libc.Close(received[i]); // more than the caller can take: never leaked
                        truncated = true;
                    }
                }
            }

            offset += (nuint)Align((int)length);
        }

        return r;
    }

    private static int Align(int length) => (length + 7) & ~7;

    public static int Bind(int fd, ReadOnlySpan<byte> address)
    {
        fixed (byte* p = address)
        {
            return (int)Result(Libc.Bind(fd, p, address.Length));
        }
    }

    public static int Listen(int fd, int backlog) => (int)Result(Libc.Listen(fd, backlog));

    /// <summary><c>accept4</c> with <c>SOCK_NONBLOCK | SOCK_CLOEXEC</c>.</summary>
    public static int Accept(int fd)
    {
        int r;
        while (Interrupted(r = Libc.Accept4(fd, null, null, Libc.SOCK_NONBLOCK | Libc.SOCK_CLOEXEC))) { }
        return (int)Result(r);
    }

    /// <summary>
    /// Starts a non-blocking connect. An interrupted connect keeps going in the kernel, so
    /// <c>EINTR</c> is reported as <c>EINPROGRESS</c> instead of being retried.
    /// </summary>
    public static int Connect(int fd, ReadOnlySpan<byte> address)
    {
        fixed (byte* p = address)
        {
            int r = (int)Result(Libc.Connect(fd, p, address.Length));
            return r == -Libc.EINTR ? -Libc.EINPROGRESS : r;
        }
    }

    public static int GetSockOptInt(int fd, int level, int name, out int value)
    {
        int v = 0;
        int len = sizeof(int);
        int r = (int)Result(Libc.GetSockOpt(fd, level, name, &v, &len));
        value = v;
        return r;
    }

    public static int SetSockOptInt(int fd, int level, int name, int value) =>
        (int)Result(Libc.SetSockOpt(fd, level, name, &value, sizeof(int)));

    /// <summary><c>SO_PEERCRED</c>: pid, uid, gid of the process that connected a Unix socket.</summary>
    public static int GetPeerCredentials(int fd, out int pid, out uint uid, out uint gid)
    {
        int* cred = stackalloc int[3];
        int len = 3 * sizeof(int);
        int r = (int)Result(Libc.GetSockOpt(fd, Libc.SOL_SOCKET, Libc.SO_PEERCRED, cred, &len));
        pid = cred[0];
        uid = (uint)cred[1];
        gid = (uint)cred[2];
        return r;
    }

    /// <summary>Reads the local (<paramref name="peer"/> false) or remote address into <paramref name="buffer"/>; returns its length.</summary>
    public static int GetName(int fd, bool peer, Span<byte> buffer)
    {
        int len = buffer.Length;
        fixed (byte* p = buffer)
        {
            int r = peer ? Libc.GetPeerName(fd, p, &len) : Libc.GetSockName(fd, p, &len);
            return r < 0 ? (int)Result(r) : len;
        }
    }

    private static int Statx(int dirFd, string path, int flags, out uint type, out ulong inode)
    {
        byte* buffer = stackalloc byte[Libc.StatxSize];
        int r;
        while (Interrupted(r = Libc.Statx(dirFd, path, flags, Libc.STATX_TYPE | Libc.STATX_INO, buffer))) { }
        type = *(ushort*)(buffer + Libc.StatxModeOffset) & Libc.S_IFMT;
        inode = *(ulong*)(buffer + Libc.StatxInoOffset);
        return (int)Result(r);
    }

    public static int Chown(string path, uint owner, uint group)
    {
        int r;
        while (Interrupted(r = Libc.Chown(path, owner, group))) { }
        return (int)Result(r);
    }

    /// <summary>
    /// A user's uid by name, through the C library (<c>getpwnam_r</c>) so every NSS source counts
    /// (files, LDAP, systemd-userdb): 1 when found, 0 when there is no such user, else the negated errno.
    /// </summary>
    public static int GetUserId(string name, out uint uid) => LookUpName(name, user: true, out uid);

    /// <summary>A group's gid by name (<c>getgrnam_r</c>), with the results of <see cref="GetUserId"/>.</summary>
    public static int GetGroupId(string name, out uint gid) => LookUpName(name, user: false, out gid);

    private static int LookUpName(string name, bool user, out uint id)
    {
        // The entry's strings go into our buffer: ERANGE asks for a bigger one (a group with many members).
        const int MaxBuffer = 1 << 20;
        for (int size = 1024; ; )
        {
            byte[] buffer = new byte[size];
            int r;
            bool found;
            fixed (byte* b = buffer)
            {
                if (user)
                {
                    Libc.Passwd entry;
                    Libc.Passwd* result = null;
                    r = Libc.GetPwNam(name, &entry, b, (nuint)size, &result);
                    found = result != null;
                    id = found ? entry.UserId : 0;
                }
                else
                {
                    Libc.Group entry;
                    Libc.Group* result = null;
                    r = Libc.GetGrNam(name, &entry, b, (nuint)size, &result);
                    found = result != null;
                    id = found ? entry.GroupId : 0;
                }
            }

            if (found)
            {
                return 1;
            }

            switch (r)
            {
                case 0 or Libc.ENOENT or Libc.ESRCH:
                    return 0; // glibc reports "no such name" as 0; other C libraries use these
                case Libc.EINTR:
                    continue;
                case Libc.ERANGE when size < MaxBuffer:
                    size *= 2;
                    continue;
                default:
                    return -r;
            }
        }
    }

    public static int EpollCreate() => (int)Result(Libc.EpollCreate1(Libc.EPOLL_CLOEXEC));

    /// <summary>sched_yield(2): lets the other runnable threads of this CPU run first; returns at once when there are none.</summary>
    public static void Yield() => Libc.SchedYield();

    public static int EventFd() => (int)Result(Libc.EventFd(0, Libc.EFD_CLOEXEC | Libc.EFD_NONBLOCK));

    public static int InotifyInit() => (int)Result(Libc.InotifyInit1(Libc.IN_CLOEXEC | Libc.IN_NONBLOCK));

    public static int InotifyAddWatch(int fd, string path, uint mask) => (int)Result(Libc.InotifyAddWatch(fd, path, mask));

    /// <summary>Writes 1 to an eventfd (wakes whoever waits on it).</summary>
    public static void SignalEventFd(int fd)
    {
        ulong one = 1;
        while (Interrupted(Libc.Write(fd, (byte*)&one, sizeof(ulong)))) { }
    }

    /// <summary>Writes all of <paramref name="bytes"/> to a blocking fd (stderr); 0, or the negated errno of the write that failed.</summary>
    public static int WriteAll(int fd, ReadOnlySpan<byte> bytes)
    {
        fixed (byte* p = bytes)
        {
            for (int written = 0; written < bytes.Length;)
            {
                nint r = Libc.Write(fd, p + written, (nuint)(bytes.Length - written));
                if (r < 0 && !Interrupted(r))
                {
                    return (int)Result(r);
                }

                written += (int)Math.Max(r, 0);
            }
        }

        return 0;
    }

    /// <summary>Reads and discards everything a non-blocking fd holds (eventfd counter, inotify events).</summary>
    public static void Drain(int fd)
    {
        byte* scratch = stackalloc byte[4096];
        while (true)
        {
            nint r = Libc.Read(fd, scratch, 4096);
            if (r > 0 || Interrupted(r))
            {
                continue;
            }

            return;
        }
    }

    public static int EpollAdd(int epfd, int fd, uint events, ulong data) => EpollSet(epfd, Libc.EPOLL_CTL_ADD, fd, events, data);

    public static int EpollMod(int epfd, int fd, uint events, ulong data) => EpollSet(epfd, Libc.EPOLL_CTL_MOD, fd, events, data);

    private static int EpollSet(int epfd, int op, int fd, uint events, ulong data)
    {
        byte* ev = stackalloc byte[16];
        EpollEvent.Write(ev, events, data);
        return (int)Result(Libc.EpollCtl(epfd, op, fd, ev));
    }

    public static int EpollDel(int epfd, int fd)
    {
        byte* ev = stackalloc byte[16];
        return (int)Result(Libc.EpollCtl(epfd, Libc.EPOLL_CTL_DEL, fd, ev));
    }
}
