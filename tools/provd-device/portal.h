/* provd-device portal: the owner's provisioning page on the device. */
#ifndef TOOLS_PROVD_DEVICE_PORTAL_H
#define TOOLS_PROVD_DEVICE_PORTAL_H

/* argv[0] is "portal"; returns the exit code (it serves until killed). */
int portal_main(int argc, char **argv);

#endif
