// The pgvault version ("0.1.0"), from the project() line of CMakeLists.txt.
#pragma once

#include "pgvault_version.h"
