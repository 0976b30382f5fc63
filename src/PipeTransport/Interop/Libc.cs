using System.Runtime.InteropServices;

namespace PipeTransport.Interop;

/// <summary>
/// The hot-path system calls, one <c>LibraryImport</c> each. Every call returns the raw libc result;
/// errors are read with <see cref="Marshal.GetLastPInvokeError"/>. Nothing here retries or throws:
/// <see cref="Sys"/> does that, in one place.
/// </summary>
internal static unsafe partial class Libc
{
    private const string Lib = "libc";

    // errno values (Linux, all architectures we run on).
    public const int EINTR = 4;
    public const int EIO = 5;
    public const int EBADF = 9;
    public const int EAGAIN = 11;
    public const int EACCES = 13;
    public const int EEXIST = 17;
    public const int ENOTDIR = 20;
    public const int EISDIR = 21;
    public const int EINVAL = 22;
    public const int ENOTTY = 25;
    public const int EPIPE = 32;
    public const int ENXIO = 6;
    public const int ENOENT = 2;
    public const int EPERM = 1;
    public const int ENOTSOCK = 88;
    public const int EADDRINUSE = 98;
    public const int ECONNABORTED = 103;
    public const int ECONNRESET = 104;
    public const int ENOTCONN = 107;
    public const int ECONNREFUSED = 111;
    public const int EINPROGRESS = 115;
    public const int ENAMETOOLONG = 36;
    public const int EMFILE = 24;
    public const int ENFILE = 23;
    public const int ENOMEM = 12;
    public const int ENOBUFS = 105;
    public const int EPROTO = 71;
    public const int ENONET = 64;
    public const int ENOPROTOOPT = 92;
    public const int EOPNOTSUPP = 95;
    public const int ENETDOWN = 100;
    public const int ENETUNREACH = 101;
    public const int EHOSTDOWN = 112;
    public const int EHOSTUNREACH = 113;
    public const int ESRCH = 3;
    public const int ERANGE = 34;

    // open(2) flags
    public const int O_RDONLY = 0;
    public const int O_WRONLY = 1;
    public const int O_RDWR = 2;
    public const int O_ACCMODE = 3;
    public const int O_NONBLOCK = 0x800;
    public const int O_CLOEXEC = 0x80000;
    public const int O_NOCTTY = 0x100;
    public const int O_CREAT = 0x40;
    public const int O_EXCL = 0x80;
    public const int O_TRUNC = 0x200;
    public const int O_APPEND = 0x400;

    // fcntl(2)
    public const int F_GETFD = 1;
    public const int F_SETFD = 2;
    public const int F_GETFL = 3;
    public const int F_SETFL = 4;
    public const int F_SETPIPE_SZ = 1031;
    public const int F_GETPIPE_SZ = 1032;
    public const int F_DUPFD_CLOEXEC = 1030;
    public const int FD_CLOEXEC = 1;

    // stat(2) file types (st_mode & S_IFMT)
    public const uint S_IFMT = 0xF000;
    public const uint S_IFIFO = 0x1000;
    public const uint S_IFCHR = 0x2000;
    public const uint S_IFDIR = 0x4000;
    public const uint S_IFREG = 0x8000;
    public const uint S_IFSOCK = 0xC000;

    // statx(2): one layout on every architecture, unlike struct stat.
    public const int AT_FDCWD = -100;
    public const int AT_SYMLINK_NOFOLLOW = 0x100;
    public const int AT_EMPTY_PATH = 0x1000;
    public const uint STATX_TYPE = 0x1;
    public const uint STATX_INO = 0x100;
    public const int StatxSize = 256;
    public const int StatxModeOffset = 28;
    public const int StatxInoOffset = 32;

    // getrlimit(2)
    public const int RLIMIT_NOFILE = 7;

    // ioctl(2)
    public const ulong FIONREAD = 0x541B;

    // epoll
    public const int EPOLL_CLOEXEC = 0x80000;
    public const int EPOLL_CTL_ADD = 1;
    public const int EPOLL_CTL_DEL = 2;
    public const int EPOLL_CTL_MOD = 3;
    public const uint EPOLLIN = 0x001;
    public const uint EPOLLOUT = 0x004;
    public const uint EPOLLERR = 0x008;
    public const uint EPOLLHUP = 0x010;
    public const uint EPOLLRDHUP = 0x2000;
    public const uint EPOLLET = 1u << 31;
    public const uint EPOLLONESHOT = 1u << 30;

    // eventfd
    public const int EFD_CLOEXEC = 0x80000;
    public const int EFD_NONBLOCK = 0x800;

    // inotify
    public const int IN_CLOEXEC = 0x80000;
    public const int IN_NONBLOCK = 0x800;
    public const uint IN_OPEN = 0x20;

    // sockets
    public const int AF_UNIX = 1;
    public const int AF_INET = 2;
    public const int AF_INET6 = 10;
    public const int SOCK_STREAM = 1;
    public const int SOCK_NONBLOCK = 0x800;
    public const int SOCK_CLOEXEC = 0x80000;
    public const int SOL_SOCKET = 1;
    public const int SO_REUSEADDR = 2;
    public const int SO_TYPE = 3;
    public const int SO_ERROR = 4;
    public const int SO_REUSEPORT = 15;
    public const int SO_PEERCRED = 17;
    public const int SO_ACCEPTCONN = 30;
    public const int IPPROTO_TCP = 6;
    public const int IPPROTO_IPV6 = 41;
    public const int TCP_NODELAY = 1;
    public const int IPV6_V6ONLY = 26;
    public const int SHUT_RD = 0;
    public const int SHUT_WR = 1;
    public const int SHUT_RDWR = 2;
    public const int MSG_NOSIGNAL = 0x4000;
    public const int SOCK_SEQPACKET = 5;
    public const int SCM_RIGHTS = 1;
    public const int MSG_CTRUNC = 0x8;
    public const int MSG_TRUNC = 0x20;
    public const int MSG_CMSG_CLOEXEC = 0x40000000;

    /// <summary><c>struct msghdr</c> (64-bit Linux).</summary>
    [StructLayout(LayoutKind.Sequential)]
    public struct MsgHdr
    {
        public void* Name;
        public int NameLength;
        public IoVec* Iov;
        public nuint IovLength;
        public void* Control;
        public nuint ControlLength;
        public int Flags;
    }

    /// <summary>The size of <c>struct cmsghdr</c> (<c>cmsg_len</c>, <c>cmsg_level</c>, <c>cmsg_type</c>), which is CMSG_ALIGNed on 64-bit Linux.</summary>
    public const int CmsgHeaderSize = 16;

    [StructLayout(LayoutKind.Sequential)]
    public struct IoVec
    {
        public void* Base;
        public nuint Length;
    }

    /// <summary><c>struct passwd</c> (glibc); its strings point into the caller's buffer.</summary>
    [StructLayout(LayoutKind.Sequential)]
    public struct Passwd
    {
        public byte* Name;
        public byte* Password;
        public uint UserId;
        public uint GroupId;
        public byte* Gecos;
        public byte* Directory;
        public byte* Shell;
    }

    /// <summary><c>struct group</c> (glibc); its strings point into the caller's buffer.</summary>
    [StructLayout(LayoutKind.Sequential)]
    public struct Group
    {
        public byte* Name;
        public byte* Password;
        public uint GroupId;
        public byte** Members;
    }

    [LibraryImport(Lib, EntryPoint = "read", SetLastError = true)]
    public static partial nint Read(int fd, byte* buffer, nuint count);

    [LibraryImport(Lib, EntryPoint = "write", SetLastError = true)]
    public static partial nint Write(int fd, byte* buffer, nuint count);

    [LibraryImport(Lib, EntryPoint = "writev", SetLastError = true)]
    public static partial nint Writev(int fd, IoVec* iov, int iovcnt);

    [LibraryImport(Lib, EntryPoint = "close", SetLastError = true)]
    public static partial int Close(int fd);

    [LibraryImport(Lib, EntryPoint = "open", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    public static partial int Open(string path, int flags, int mode);

    [LibraryImport(Lib, EntryPoint = "fcntl", SetLastError = true)]
    public static partial int Fcntl(int fd, int cmd, int arg);

    [LibraryImport(Lib, EntryPoint = "ioctl", SetLastError = true)]
    public static partial int Ioctl(int fd, ulong request, int* arg);

    [LibraryImport(Lib, EntryPoint = "pipe2", SetLastError = true)]
    public static partial int Pipe2(int* fds, int flags);

    [LibraryImport(Lib, EntryPoint = "epoll_create1", SetLastError = true)]
    public static partial int EpollCreate1(int flags);

    [LibraryImport(Lib, EntryPoint = "epoll_ctl", SetLastError = true)]
    public static partial int EpollCtl(int epfd, int op, int fd, byte* ev);

    [LibraryImport(Lib, EntryPoint = "epoll_wait", SetLastError = true)]
    public static partial int EpollWait(int epfd, byte* events, int maxEvents, int timeout);

    [LibraryImport(Lib, EntryPoint = "eventfd", SetLastError = true)]
    public static partial int EventFd(uint initval, int flags);

    [LibraryImport(Lib, EntryPoint = "inotify_init1", SetLastError = true)]
    public static partial int InotifyInit1(int flags);

    [LibraryImport(Lib, EntryPoint = "inotify_add_watch", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    public static partial int InotifyAddWatch(int fd, string path, uint mask);

    [LibraryImport(Lib, EntryPoint = "socket", SetLastError = true)]
    public static partial int Socket(int domain, int type, int protocol);

    [LibraryImport(Lib, EntryPoint = "socketpair", SetLastError = true)]
    public static partial int SocketPair(int domain, int type, int protocol, int* fds);

    [LibraryImport(Lib, EntryPoint = "bind", SetLastError = true)]
    public static partial int Bind(int fd, byte* addr, int addrLen);

    [LibraryImport(Lib, EntryPoint = "listen", SetLastError = true)]
    public static partial int Listen(int fd, int backlog);

    [LibraryImport(Lib, EntryPoint = "accept4", SetLastError = true)]
    public static partial int Accept4(int fd, byte* addr, int* addrLen, int flags);

    [LibraryImport(Lib, EntryPoint = "connect", SetLastError = true)]
    public static partial int Connect(int fd, byte* addr, int addrLen);

    [LibraryImport(Lib, EntryPoint = "shutdown", SetLastError = true)]
    public static partial int Shutdown(int fd, int how);

    [LibraryImport(Lib, EntryPoint = "getsockopt", SetLastError = true)]
    public static partial int GetSockOpt(int fd, int level, int name, void* value, int* len);

    [LibraryImport(Lib, EntryPoint = "setsockopt", SetLastError = true)]
    public static partial int SetSockOpt(int fd, int level, int name, void* value, int len);

    [LibraryImport(Lib, EntryPoint = "getsockname", SetLastError = true)]
    public static partial int GetSockName(int fd, byte* addr, int* addrLen);

    [LibraryImport(Lib, EntryPoint = "getpeername", SetLastError = true)]
    public static partial int GetPeerName(int fd, byte* addr, int* addrLen);

    [LibraryImport(Lib, EntryPoint = "statx", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    public static partial int Statx(int dirFd, string path, int flags, uint mask, byte* buffer);

    [LibraryImport(Lib, EntryPoint = "mkfifo", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    public static partial int Mkfifo(string path, uint mode);

    [LibraryImport(Lib, EntryPoint = "chmod", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    public static partial int Chmod(string path, uint mode);

    [LibraryImport(Lib, EntryPoint = "unlink", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    public static partial int Unlink(string path);

    [LibraryImport(Lib, EntryPoint = "getrlimit", SetLastError = true)]
    public static partial int GetRLimit(int resource, ulong* limits);

    [LibraryImport(Lib, EntryPoint = "getdents64", SetLastError = true)]
    public static partial nint GetDents64(int fd, byte* buffer, nuint count);

    [LibraryImport(Lib, EntryPoint = "chown", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    public static partial int Chown(string path, uint owner, uint group);

    // The _r lookups return the error number instead of setting errno.
    [LibraryImport(Lib, EntryPoint = "getpwnam_r", StringMarshalling = StringMarshalling.Utf8)]
    public static partial int GetPwNam(string name, Passwd* entry, byte* buffer, nuint size, Passwd** result);

    [LibraryImport(Lib, EntryPoint = "getgrnam_r", StringMarshalling = StringMarshalling.Utf8)]
    public static partial int GetGrNam(string name, Group* entry, byte* buffer, nuint size, Group** result);

    [LibraryImport(Lib, EntryPoint = "sendmsg", SetLastError = true)]
    public static partial nint SendMsg(int fd, MsgHdr* message, int flags);

    [LibraryImport(Lib, EntryPoint = "recvmsg", SetLastError = true)]
    public static partial nint RecvMsg(int fd, MsgHdr* message, int flags);

    [LibraryImport(Lib, EntryPoint = "rename", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    public static partial int Rename(string oldPath, string newPath);

    [LibraryImport(Lib, EntryPoint = "geteuid")]
    public static partial uint GetEuid();

    [LibraryImport(Lib, EntryPoint = "sched_yield")]
    public static partial int SchedYield();
}
