/* world.c: the fixed facts of the demo world (see world.h). Sales tax and
 * documentation fees follow the states' 2024 rules (Minnesota 6.875% and a
 * capped doc fee, Illinois 7.25% and its indexed cap, Wisconsin 5%); the
 * recall campaigns are modelled on real NHTSA campaigns of these makes. */
#include "world.h"

#include "generate.h"

static const data_dealership north_star[] = {
    {"ns-minneapolis", "North Star Toyota Minneapolis", "Minneapolis", "MN",
     "2500 Hennepin Ave S, Minneapolis, MN 55405", "(612) 555-0142",
     {"Toyota", NULL}, 0.06875, 350.0, 210.0, "09:00", "19:00"},
    {"ns-st-paul", "North Star Honda St. Paul", "St. Paul", "MN",
     "1450 University Ave W, St. Paul, MN 55104", "(651) 555-0178",
     {"Honda", NULL}, 0.06875, 350.0, 210.0, "09:00", "18:00"},
    {"ns-duluth", "North Star Ford Duluth", "Duluth", "MN",
     "4300 Grand Ave, Duluth, MN 55807", "(218) 555-0120",
     {"Ford", NULL}, 0.06875, 350.0, 210.0, "08:30", "18:00"},
};

static const data_dealership lakeside[] = {
    {"lk-chicago", "Lakeside Chevrolet Chicago", "Chicago", "IL",
     "2100 N Elston Ave, Chicago, IL 60614", "(312) 555-0163",
     {"Chevrolet", NULL}, 0.0725, 358.03, 151.0, "09:00", "20:00"},
    {"lk-milwaukee", "Lakeside Subaru Milwaukee", "Milwaukee", "WI",
     "5600 S 27th St, Milwaukee, WI 53221", "(414) 555-0188",
     {"Subaru", NULL}, 0.05, 299.0, 165.0, "09:00", "19:00"},
    {"lk-evanston", "Lakeside Hyundai Kia Evanston", "Evanston", "IL",
     "1025 Chicago Ave, Evanston, IL 60202", "(847) 555-0135",
     {"Hyundai", "Kia", NULL}, 0.0725, 358.03, 151.0, "09:00", "19:00"},
};

static const data_policy north_star_policies[] = {
    {"calendar.start", "\"" DL_DATA_CALENDAR_START "\""},
    {"finance.apr", "{\"excellent\":5.49,\"good\":6.99,\"fair\":10.49,\"poor\":15.99}"},
    {"finance.bands", "{\"excellent\":740,\"good\":670,\"fair\":580,\"poor\":300}"},
    {"finance.terms", "[36,48,60,72,84]"},
    {"finance.min_down_pct", "{\"excellent\":0,\"good\":5,\"fair\":10,\"poor\":20}"},
    {"finance.max_amount", "{\"excellent\":120000,\"good\":80000,\"fair\":45000,\"poor\":25000}"},
    {"finance.taxable_fees", "true"},
    {"test_drive", "{\"minutes\":30,\"per_hour\":2}"},
    {"service.labor_rate", "149.0"},
    {"parts.lead_days", "{\"in_stock\":0,\"order\":3}"},
};

static const data_policy lakeside_policies[] = {
    {"calendar.start", "\"" DL_DATA_CALENDAR_START "\""},
    {"finance.apr", "{\"excellent\":4.99,\"good\":6.49,\"fair\":9.99,\"poor\":17.49}"},
    {"finance.bands", "{\"excellent\":760,\"good\":680,\"fair\":600,\"poor\":300}"},
    {"finance.terms", "[24,36,48,60,72]"},
    {"finance.min_down_pct", "{\"excellent\":0,\"good\":0,\"fair\":10,\"poor\":25}"},
    {"finance.max_amount", "{\"excellent\":150000,\"good\":90000,\"fair\":50000,\"poor\":20000}"},
    {"finance.taxable_fees", "false"},
    {"test_drive", "{\"minutes\":60,\"per_hour\":1}"},
    {"service.labor_rate", "165.0"},
    {"parts.lead_days", "{\"in_stock\":0,\"order\":5}"},
};

#define LEN(a) (sizeof(a) / sizeof((a)[0]))

const data_tenant data_tenants[] = {
    {"north-star", "North Star Auto Group", 100000, north_star, LEN(north_star),
     north_star_policies, LEN(north_star_policies)},
    {"lakeside", "Lakeside Motors", 500000, lakeside, LEN(lakeside),
     lakeside_policies, LEN(lakeside_policies)},
};
const size_t data_tenants_len = LEN(data_tenants);

const char *const dl_data_tenants[] = {"north-star", "lakeside"};
const size_t dl_data_tenants_len = LEN(dl_data_tenants);

const data_recall data_recalls[] = {
    {"24V-051", "Toyota", "Tundra", 2022, 2024, "FUEL SYSTEM, GASOLINE",
     "The low-pressure fuel pump may fail, causing the engine to stall.",
     "Dealers will replace the fuel pump assembly, free of charge."},
    {"23V-260", "Toyota", "Highlander", 2020, 2023, "ELECTRICAL SYSTEM",
     "The rear seat belt warning sensor wiring may short.",
     "Dealers will inspect and repair the wiring harness."},
    {"24V-381", "Toyota", "Tacoma", 2024, 2024, "POWER TRAIN",
     "Debris from manufacturing may damage the rear axle.",
     "Dealers will inspect and replace the rear axle as needed."},
    {"23V-718", "Toyota", "RAV4", 2019, 2022, "ELECTRICAL SYSTEM",
     "The 12V battery hold-down may allow the battery to shift and short.",
     "Dealers will install an improved battery hold-down clamp."},
    {"24V-276", "Toyota", "Prius", 2023, 2024, "LATCHES/LOCKS/LINKAGES",
     "Water may enter the rear door opener switch, opening the door.",
     "Dealers will replace the rear door opener switches."},
    {"23V-409", "Honda", "Accord", 2018, 2020, "STEERING",
     "The steering gearbox worm wheel may wear, increasing effort.",
     "Dealers will install a steering gearbox assist spring."},
    {"24V-223", "Honda", "CR-V", 2023, 2024, "FUEL SYSTEM, GASOLINE",
     "The fuel pump impeller may deform and the engine may stall.",
     "Dealers will replace the fuel pump, free of charge."},
    {"23V-865", "Honda", "Pilot", 2023, 2024, "STRUCTURE",
     "A seat belt anchor bolt may be missing on the third row.",
     "Dealers will inspect and install the anchor bolt."},
    {"22V-689", "Honda", "Civic", 2022, 2022, "BACK OVER PREVENTION",
     "The rearview camera image may not display when reversing.",
     "Dealers will update the audio unit software."},
    {"24V-330", "Ford", "F-150", 2015, 2023, "POWER TRAIN",
     "The transmission may unexpectedly downshift into first gear.",
     "Dealers will update the powertrain control module software."},
    {"23V-671", "Ford", "Explorer", 2020, 2022, "SUSPENSION",
     "The rear axle bolt may fracture, disconnecting the driveshaft.",
     "Dealers will replace the rear axle horizontal mounting bolt."},
    {"24V-041", "Ford", "Mustang Mach-E", 2021, 2022, "ELECTRICAL SYSTEM",
     "The high-voltage battery main contactors may overheat and open.",
     "Dealers will update the battery energy control module software."},
    {"23V-553", "Ford", "Bronco", 2021, 2022, "AIR BAGS",
     "The driver knee air bag may not deploy as intended.",
     "Dealers will inspect and replace the knee air bag."},
    {"24V-198", "Ford", "Escape", 2020, 2023, "ENGINE",
     "A cracked fuel injector may leak fuel near hot surfaces.",
     "Dealers will install a drain tube and update software."},
    {"23V-121", "Chevrolet", "Bolt EV", 2019, 2022, "ELECTRICAL SYSTEM",
     "The high-voltage battery may catch fire when charged full.",
     "Dealers will replace the battery modules."},
    {"24V-312", "Chevrolet", "Silverado 1500", 2021, 2023, "BRAKES",
     "The brake pressure sensor may leak, reducing brake assist.",
     "Dealers will replace the brake pressure sensor."},
    {"23V-478", "Chevrolet", "Traverse", 2018, 2020, "WHEELS",
     "The wheel lug nuts may loosen and the wheel may detach.",
     "Dealers will replace the wheel studs and lug nuts."},
    {"24V-067", "Chevrolet", "Equinox", 2020, 2022, "EXTERIOR LIGHTING",
     "The tail lamp circuit board may corrode and fail.",
     "Dealers will replace the tail lamp assemblies."},
    {"24V-179", "Subaru", "Outback", 2020, 2022, "AIR BAGS",
     "The front passenger air bag sensor may fail to detect an adult.",
     "Dealers will replace the occupant detection sensor."},
    {"23V-332", "Subaru", "Ascent", 2019, 2022, "ELECTRICAL SYSTEM",
     "A ground bolt may not be tight, causing an electrical fire.",
     "Dealers will install a new ground bolt and inspect the area."},
    {"24V-148", "Subaru", "Crosstrek", 2024, 2024, "SEATS",
     "The passenger seat frame welds may be incomplete.",
     "Dealers will inspect and replace the seat frame."},
    {"23V-605", "Hyundai", "Tucson", 2022, 2023, "ENGINE",
     "The engine connecting rod bearings may wear and seize.",
     "Dealers will inspect the engine and replace it if necessary."},
    {"24V-215", "Hyundai", "Ioniq 5", 2022, 2024, "ELECTRICAL SYSTEM",
     "The integrated charging control unit may stop charging the 12V battery.",
     "Dealers will update software and replace the ICCU as needed."},
    {"23V-650", "Kia", "Sportage", 2022, 2023, "ELECTRICAL SYSTEM",
     "The ABS module may short-circuit and cause a fire.",
     "Dealers will replace the ABS fuse with one of lower amperage."},
    {"24V-210", "Kia", "EV6", 2022, 2024, "ELECTRICAL SYSTEM",
     "The integrated charging control unit may stop charging the 12V battery.",
     "Dealers will update software and replace the ICCU as needed."},
    {"24V-098", "Tesla", "Model Y", 2020, 2023, "STEERING",
     "The steering wheel may detach from the column.",
     "Dealers will inspect and torque the steering wheel bolt."},
    {"23V-838", "Tesla", "Model 3", 2017, 2023, "STEERING",
     "The Autosteer controls may not be sufficient to prevent misuse.",
     "An over-the-air software update adds driver alerts."},
    {"24V-102", "Nissan", "Rogue", 2021, 2023, "POWER TRAIN",
     "The CVT may enter fail-safe mode, reducing power.",
     "Dealers will update the transmission control software."},
};
const size_t data_recalls_len = LEN(data_recalls);

const char *const data_first_names[] = {
    "Olivia", "Liam", "Emma", "Noah", "Ava", "Elijah", "Sophia", "James",
    "Isabella", "Lucas", "Mia", "Mateo", "Amelia", "Ethan", "Harper", "Aiden",
    "Evelyn", "Daniel", "Abigail", "Henry", "Maria", "Jose", "Aaliyah",
    "Darnell", "Priya", "Arjun", "Mei", "Wei", "Fatima", "Omar", "Ingrid",
    "Lars", "Hannah", "Samuel", "Grace", "Benjamin"};
const size_t data_first_names_len = LEN(data_first_names);

const char *const data_last_names[] = {
    "Johnson", "Anderson", "Nelson", "Olson", "Peterson", "Larson", "Garcia",
    "Martinez", "Nguyen", "Kim", "Patel", "Smith", "Williams", "Brown",
    "Jones", "Miller", "Davis", "Lopez", "Wilson", "Thompson", "Moore",
    "Jackson", "Lee", "Hernandez", "Chen", "Kowalski", "Schmidt", "Novak",
    "O'Brien", "Hansen"};
const size_t data_last_names_len = LEN(data_last_names);
